"""All of Metrivo's queries. A repository never commits: the unit of work does."""
