"""The options of every middleware type: one frozen dataclass per Traefik type (part of the model).

The family modules (``paths``, ``headers``, ``auth``, ...) declare them; :mod:`.registry` collects them
and reads them from files and labels alike; the router builds each middleware from its dataclass and may
import the family modules, not the readers (``fields``, ``registry``).
"""
