"""The contract as data: the OpenAPI document and the requirement catalogue.

Installed as ``conformance._spec`` (see pyproject.toml); read through
``conformance.contract``, never directly.
"""
