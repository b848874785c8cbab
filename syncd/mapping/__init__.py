"""Mapping files: declarative, checked, previewable field mappings (see docs/mappings.md).

load_mapping(path, tables)   -> MappingSet (raises MappingError listing every problem)
check_mapping(path, tables)  -> [MappingError, ...], each with file, line, column, field
render_preview(mapping, table, records, limit) -> a rich Table
"""

from syncd.mapping.loader import check_mapping, load_mapping
from syncd.mapping.model import LANGUAGE_VERSION, Column, MappingSet, OutputTable
from syncd.mapping.preview import render_preview
from syncd.mapping.transforms import CURRENCY_DIGITS, Defaults

__all__ = [
    "CURRENCY_DIGITS",
    "LANGUAGE_VERSION",
    "Column",
    "Defaults",
    "MappingSet",
    "OutputTable",
    "check_mapping",
    "load_mapping",
    "render_preview",
]
