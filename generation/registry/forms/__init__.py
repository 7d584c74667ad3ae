"""Django forms generated from JSON Schemas (see ``form.SchemaForm``)."""

from generation.registry.forms.form import SchemaForm, field_name, ordered_properties
from generation.registry.forms.values import UPLOAD_SUFFIX

__all__ = ["UPLOAD_SUFFIX", "SchemaForm", "field_name", "ordered_properties"]
