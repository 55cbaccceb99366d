"""Human review and ranking: a local web app over a run's records, its SQLite store, and the
export of the reviewed set.

    items.py   what is reviewed: one item per record, or per prompt with its K responses
               (ranking); judge signals (score, uncertainty) for ordering the queue
    store.py   the SQLite store (WAL, busy_timeout) beside the run: items, annotators (hashed
               tokens), claims, versioned decisions (drafts too) and their full history
    app.py     the Starlette app: pages and JSON API, token auth, CSRF, CSP, body limits
    server.py  running the app with uvicorn (in the foreground, or in a thread for a recipe)
    export.py  the reviewed set: approved/edited records with review provenance, and ranking
               lines that `synthloom pairs` reads
    static/    the front end: plain ES modules and CSS, no build step

The command line is `synthloom review serve|add-user|export|wait` (synthloom.cli.review); the
recipe steps are `review` and `review-export` (synthloom.steps).
"""
