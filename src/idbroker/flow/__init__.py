"""The interaction of an authorization request: the parked request, the prompts it must pass
(login, verification, terms, second factor, consent) and the answer to the client."""
