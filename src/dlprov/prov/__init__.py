"""W3C PROV out of the store: documents, files (PROV-N, PROV-JSON, PROV-XML, RDF) and pictures.

- :func:`document` / :func:`model_document`: a :class:`prov.model.ProvDocument` of a dataflow,
  one execution or one model's derivation trace (:mod:`dlprov.prov.mapping`);
- :func:`export` / :func:`write` / :func:`serialize`: the same as file contents
  (:mod:`dlprov.prov.export`);
- :func:`write_picture` / :func:`render`: drawings (:mod:`dlprov.prov.picture`);
- :func:`validate`: W3C PROV-CONSTRAINTS validity of a document (:mod:`dlprov.prov.constraints`).
"""
from dlprov.prov.export import (
    FORMATS,
    ExportError,
    deserialize,
    export,
    format_of,
    serialize,
    write,
    write_document,
)
from dlprov.prov.constraints import validate
from dlprov.prov.ids import DLPROV
from dlprov.prov.mapping import document, model_document
from dlprov.prov.picture import render, write_picture

__all__ = ["document", "model_document", "export", "write", "write_document", "serialize",
           "deserialize", "format_of", "render", "write_picture", "FORMATS", "DLPROV",
           "ExportError", "validate"]
