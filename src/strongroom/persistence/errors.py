from strongroom.errors import StrongroomError


class PersistenceError(StrongroomError):
    code = "persistence_error"


class CommitFailed(PersistenceError):
    """A journal group could not be committed; the process must stop and recover."""
