"""Everything that knows a particular chat service: one package each, behind `base.py`'s contracts.

`registry` names them; nothing outside this package imports a service package directly except
through it (and a locustfile choosing its users).
"""
