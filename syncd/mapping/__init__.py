"""Mapping files: declarative, checked, previewable field mappings (see docs/mappings.md).

load_mapping(path, tables)   -> MappingSet (raises MappingError listing every problem)
check_mapping(path, tables)  -> [MappingError, ...], each with file, line, column, field
render_preview(mapping, table, records, limit) -> a rich Table
"""

from typing import TYPE_CHECKING

from syncd.lazy import exports
from syncd.mapping.loader import check_mapping, load_mapping
from syncd.mapping.model import LANGUAGE_VERSION, Column, MappingSet, OutputTable
from syncd.mapping.transforms import CURRENCY_DIGITS, Defaults

if TYPE_CHECKING:
    from syncd.mapping.preview import render_preview
# The preview draws with rich: imported by `syncd mapping preview`, not by every sync.
__getattr__ = exports(__name__, {"render_preview": "syncd.mapping.preview"})

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
