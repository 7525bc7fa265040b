"""Importing a JSONL or CSV file from the console, with progress.

``idnode import`` is the local operator's trusted bulk path (no authorisation: whoever can
read the data directory may do anything). A file uploaded here is written record by record
through the write service exactly as ``PUT /api/handles/H`` writes it, with the signed-in
identity, so a record the identity may not write is refused and reported with its line, and
the others are written. The upload is limited by ``max_body``. The job runs in the
background; its page polls ``/admin/import/{id}.json`` (a page without JavaScript reloads).
"""

from __future__ import annotations

import asyncio
import secrets
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from registry.audit import Caller
from registry.authz import Principal
from registry.errors import HandleError, ProtocolError
from resolver.console.context import (
    caller_of,
    node_of,
    read_form,
    redirect,
    session_of,
    show,
    signed_in,
)
from resolver.console.html import EMPTY, Html, csrf_field, fill, join
from resolver.console.importfile import Item, items_of
from resolver.http.respond import json_response
from resolver.node import Node

MAX_JOBS = 100  # kept, the oldest forgotten first
MAX_ERRORS = 50  # reported per job


@dataclass
class Job:
    id: str
    owner: str  # the identity that started it: the only one who sees it
    name: str
    total: int
    done: int = 0
    created: int = 0
    replaced: int = 0
    failed: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)
    finished: bool = False
    task: asyncio.Task[None] | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "total": self.total,
            "done": self.done,
            "created": self.created,
            "replaced": self.replaced,
            "failed": self.failed,
            "errors": [{"line": n, "message": m} for n, m in self.errors],
            "finished": self.finished,
        }

    def refuse(self, line: int, message: str) -> None:
        self.failed += 1
        if len(self.errors) < MAX_ERRORS:
            self.errors.append((line, message))


class Jobs:
    def __init__(self) -> None:
        self._jobs: OrderedDict[str, Job] = OrderedDict()

    def start(
        self, node: Node, who: Principal, caller: Caller, name: str, items: list[Item]
    ) -> Job:
        job = Job(secrets.token_urlsafe(12), who.ref_key, name, len(items))
        self._jobs[job.id] = job
        while len(self._jobs) > MAX_JOBS:
            _, old = self._jobs.popitem(last=False)
            if old.task is not None:
                old.task.cancel()
        job.task = asyncio.create_task(_run(node, who, caller, job, items), name="console-import")
        return job

    def get(self, job_id: str, who: Principal) -> Job | None:
        job = self._jobs.get(job_id)
        return job if job is not None and job.owner == who.ref_key else None

    async def close(self) -> None:
        for job in self._jobs.values():
            if job.task is not None:
                job.task.cancel()
        await asyncio.gather(
            *(j.task for j in self._jobs.values() if j.task), return_exceptions=True
        )


JOBS = web.AppKey("console_jobs", Jobs)


async def _run(node: Node, who: Principal, caller: Caller, job: Job, items: list[Item]) -> None:
    try:
        for item in items:
            if item.ident is None:
                job.refuse(item.line, item.error)
            else:
                try:
                    result = await node.registry.put_record(
                        item.ident, item.values, overwrite=True, who=who, caller=caller
                    )
                except HandleError as exc:
                    job.refuse(item.line, f"{item.ident.text}: {exc.message or exc.outcome.name}")
                else:
                    if result.created:
                        job.created += 1
                    else:
                        job.replaced += 1
            job.done += 1
    finally:
        job.finished = True


FORM = """<h1>Import</h1>
<p>A JSON Lines file as <code>idnode export</code> writes it (one
<code>{"handle": ..., "values": [...]}</code> a line), or a CSV file with the header
<code>handle,index,type,data</code> (optional <code>ttl</code>, <code>permissions</code>),
one value a row. Every record is written as the HTTP API writes it, with your identity.</p>
<form method="post" action="/admin/import" enctype="multipart/form-data" class="stack">$csrf
<label for="file">File (.jsonl or .csv)</label>
<input id="file" name="file" type="file" accept=".jsonl,.json,.csv,.txt" required>
<button type="submit">Import</button></form>"""


@signed_in
async def import_form(request: web.Request) -> web.StreamResponse:
    return show(request, "Import", fill(FORM, csrf=csrf_field(session_of(request).csrf)))


@signed_in
async def upload(request: web.Request) -> web.StreamResponse:
    form = await read_form(request)
    upload = form.get("file")
    if not isinstance(upload, web.FileField):
        raise ProtocolError("Choose a file to import")
    raw = upload.file.read()
    items = items_of(upload.filename, raw)
    if not items:
        raise ProtocolError("The file holds no records")
    who = session_of(request).who
    job = request.app[JOBS].start(node_of(request), who, caller_of(request), upload.filename, items)
    return redirect(f"/admin/import/{job.id}")


PROGRESS = """<h1>Importing $name</h1>
<div id="import" data-status="/admin/import/$id.json">
<progress id="bar" max="$total" value="$done">$done / $total</progress>
<p id="figures" role="status" aria-live="polite">$figures</p>
<ol id="errors" class="errors">$errors</ol></div>
$refresh<p><a href="/admin/prefix/$prefix">Back to $prefix</a> ·
<a href="/admin/import">Import another file</a></p>"""


def figures(job: Job) -> str:
    state = "Done" if job.finished else "Working"
    return (
        f"{state}: {job.done} of {job.total} records — {job.created} created, "
        f"{job.replaced} replaced, {job.failed} refused."
    )


def _job(request: web.Request) -> Job:
    job = request.app[JOBS].get(request.match_info["job"], session_of(request).who)
    if job is None:
        raise web.HTTPNotFound()
    return job


@signed_in
async def progress(request: web.Request) -> web.StreamResponse:
    job = _job(request)
    errors = join(fill("<li>line $n: $m</li>", n=n, m=m) for n, m in job.errors)
    body = fill(
        PROGRESS,
        name=job.name,
        id=job.id,
        total=job.total,
        done=job.done,
        figures=figures(job),
        prefix=session_of(request).prefix,
        errors=errors,
        refresh=EMPTY
        if job.finished
        else Html("<noscript><p>Reload to see progress.</p></noscript>"),
    )
    script = Html('<script src="/admin/static/console.js" defer></script>')
    return show(request, f"Import {job.name}", body, head=script)


@signed_in
async def status(request: web.Request) -> web.StreamResponse:
    job = _job(request)
    return json_response(
        {**job.as_json(), "summary": figures(job)}, headers={"Cache-Control": "no-store"}
    )
