"""The daemon (docs/daemon.md): one per state directory, it runs detached and orphaned jobs in
child runners, wakes them at their time, and serves callbacks, events and a control API.

    files.py       its files in the state directory: lease, daemon.json, token, log
    server.py      the HTTP server (docs/api.yaml)
    supervisor.py  runner processes: which jobs run, when, and how many at once
    main.py        the daemon process, and starting/stopping it
    intake.py      the intake log: deliveries made durable in batches, then moved to inboxes
    client.py      the CLI's side: fm daemon, fm run -d, fm send, fm complete

Nothing here is imported by `fm FILE`: a script that never needs the daemon never loads it.
"""
