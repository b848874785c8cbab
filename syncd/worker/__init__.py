"""`syncd worker`: many accounts, many workers, on a PostgreSQL job queue (procrastinate).

queue.py       the procrastinate app on the top-level store's database, its schema
tasks.py       the jobs (pull of one stream of one account, push-back of one account)
               and what a worker process keeps between them (stores, clients, metrics)
scheduling.py  the cluster's tick: queue the jobs due, hand stalled jobs to live workers
command.py     the process: two procrastinate workers, signals, /healthz and /metrics
listing.py     `syncd jobs`
"""
