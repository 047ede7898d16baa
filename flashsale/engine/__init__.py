"""The core: Redis decides every purchase atomically; the settlement worker records it."""
