"""The audience rule engine (AUD-2 … AUD-5), pure: parse and check a definition's criteria
once, when it is saved, and compile them (`compiled`); evaluate for one profile at an
instant (`membership`)."""
