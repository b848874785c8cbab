"""syncd: keep books, spreadsheets and CRMs in step with the Invoiced billing API."""

__version__ = "0.1.0"
