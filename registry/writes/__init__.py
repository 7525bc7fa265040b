"""The parts of the write service (:class:`registry.service.Registry`), one job each: who may
change what (:mod:`.access`), how given values become stored ones (:mod:`.values`), the
changes of each kind of write as a store mutation (:mod:`.edits`, :mod:`.imports`,
:mod:`.keys`)."""
