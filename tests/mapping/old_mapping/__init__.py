"""The mapping's loader, model, row builders, transforms, schema and kinds as they were before
the row builders read lists, references and templates inline (#14, sixth round): the reference
tests/mapping/test_old_differential.py holds `MappingSet.apply` to. Frozen: do not edit."""
