"""Metaflow extension entry point for safeart.

Metaflow imports this module while it loads its plugins (``import metaflow``) and registers
every serializer listed in ``ARTIFACT_SERIALIZERS_DESC``. Registering safeart's serializer
here is what lets *any* Metaflow process -- a client notebook, ``python flow.py dump``, a
downstream flow -- read safeart artifacts without importing safeart. Writing artifacts in
the safe format stays opt-in: a flow turns it on with ``import safeart.metaflow``.

The second entry reads pickled artifacts through safeart's scan and restricted unpickler,
only while enforcement is on (``SAFEART_ENFORCE=1``, ``safeart.metaflow.enforce()``, strict
mode); it never claims anything on save.
"""

ARTIFACT_SERIALIZERS_DESC = [
    ("safeart", ".safeart_serializer.SafeartSerializer"),
    ("safeart_enforce", ".safeart_enforce.EnforcingPickleSerializer"),
]
