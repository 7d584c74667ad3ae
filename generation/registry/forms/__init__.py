"""Django forms generated from JSON Schemas (see ``form.SchemaForm``)."""

from generation.registry.forms.fields import UPLOAD_SUFFIX
from generation.registry.forms.form import SchemaForm, field_name, ordered_properties

__all__ = ["UPLOAD_SUFFIX", "SchemaForm", "field_name", "ordered_properties"]
