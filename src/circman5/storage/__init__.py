"""The twin's database: one contract, two backends (SQLite, PostgreSQL).

* :mod:`.contracts`: the repositories the twin's documented classes (``EventPersistence``,
  ``ScenarioManager``) delegate to, as Protocol classes;
* :mod:`.migrations`: versioned schemas applied at open, refusing a newer schema;
* :mod:`.sqlite`: the standalone backend (files under the data directory, the default);
* :mod:`.postgres`: the distributed backend (psycopg 3 with a connection pool);
* :mod:`.database`: opens the backend that ``[database] url`` names.

The twin core imports only :mod:`.contracts` and :mod:`.sqlite` (the standard library's
``sqlite3``); the PostgreSQL driver is imported only by the composition root through
:mod:`.database`, so the twin stays free of database client libraries (an import contract).
This package imports nothing of the twin, the service or the API.
"""
