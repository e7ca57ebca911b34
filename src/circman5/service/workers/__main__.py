"""``python -m circman5.service.workers``: one ingestion worker process (see ``process``)."""

from circman5.service.workers.process import main

main()
