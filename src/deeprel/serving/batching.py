"""Request batching: many concurrent requests, one inference worker, shared model batches.

Requests wait in an asyncio queue. The worker takes the first, gathers more for up to ``max_wait``
seconds or until ``batch_size`` sentences are in hand, and extracts them all in one call on its own
thread, so the model is never called from two threads at once and short requests share its batches.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass

from deeprel.api import Extraction, Extractor
from deeprel.data.text import Tokenizer
from deeprel.data.types import Document


class QueueFull(Exception):
    """The service already holds as many requests as it may; the client should retry later."""


@dataclass(frozen=True)
class _Job:
    documents: list[Document]  # tokenised once, on the tokenizer's thread
    threshold: float | None
    future: asyncio.Future[list[Extraction]]

    @property
    def sentences(self) -> int:
        return sum(len(d.sentences) for d in self.documents)


class Batcher:
    """Runs requests through one ``Extractor`` in batches; use inside ``async with batcher.running():``."""

    def __init__(self, extractor: Extractor, batch_size: int, max_wait: float, max_queue: int) -> None:
        self.extractor = extractor
        self.batch_size = batch_size
        self.max_wait = max_wait
        self.max_queue = max_queue
        self._pending = 0
        self._queue: asyncio.Queue[_Job] | None = None
        # Sentence splitting (spaCy) should neither block the event loop nor run on several threads at
        # once: it gets a thread of its own, as the model does.
        self._tokenizer = Tokenizer()
        self._tokenize_thread: ThreadPoolExecutor | None = None
        self._infer_thread: ThreadPoolExecutor | None = None

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Start the worker and its threads; on exit stop them and cancel whatever still waits."""
        self._queue = asyncio.Queue()
        self._tokenize_thread = ThreadPoolExecutor(1, thread_name_prefix="deeprel-tokenize")
        self._infer_thread = ThreadPoolExecutor(1, thread_name_prefix="deeprel-infer")
        worker = asyncio.create_task(self._work(), name="deeprel-batcher")
        try:
            yield
        finally:
            worker.cancel()
            while not self._queue.empty():
                self._queue.get_nowait().future.cancel()
            self._tokenize_thread.shutdown(wait=False, cancel_futures=True)
            self._infer_thread.shutdown(wait=False, cancel_futures=True)

    async def submit(self, texts: Sequence[str], threshold: float | None = None) -> list[Extraction]:
        """One ``Extraction`` per text, as ``extractor.extract`` gives; ``QueueFull`` when the service is full."""
        if self._queue is None or self._tokenize_thread is None:
            raise RuntimeError("the batcher is not running")
        if self._pending >= self.max_queue:
            raise QueueFull(f"{self._pending} requests already waiting (the limit is {self.max_queue})")
        self._pending += 1
        try:
            loop = asyncio.get_running_loop()
            documents = await loop.run_in_executor(self._tokenize_thread, self._documents, list(texts))
            future: asyncio.Future[list[Extraction]] = loop.create_future()
            self._queue.put_nowait(_Job(documents, threshold, future))
            return await future
        finally:
            self._pending -= 1

    def _documents(self, texts: list[str]) -> list[Document]:
        return [self._tokenizer.document(text, id=str(i)) for i, text in enumerate(texts)]

    async def _work(self) -> None:
        while True:
            jobs = await self._gather()
            for threshold in dict.fromkeys(job.threshold for job in jobs):
                await self._run([job for job in jobs if job.threshold == threshold], threshold)

    async def _gather(self) -> list[_Job]:
        """The next round: the first waiting job and whatever else arrives before the deadline or fills a batch."""
        assert self._queue is not None
        jobs = [await self._queue.get()]
        sentences = jobs[0].sentences
        deadline = asyncio.get_running_loop().time() + self.max_wait
        while sentences < self.batch_size:
            try:
                # The queue's get is awaited directly (not in a task of its own, as wait_for would),
                # so a timeout can never take a job off the queue and lose it.
                async with asyncio.timeout_at(deadline):
                    job = await self._queue.get()
            except TimeoutError:
                break
            jobs.append(job)
            sentences += job.sentences
        return jobs

    async def _run(self, jobs: list[_Job], threshold: float | None) -> None:
        """Extract for ``jobs`` in one call; if that fails, each job alone, so only a bad request fails."""
        assert self._infer_thread is not None
        jobs = [job for job in jobs if not job.future.done()]  # a client that went away is skipped
        if not jobs:
            return
        documents = [document for job in jobs for document in job.documents]
        extractor = _at_threshold(self.extractor, threshold)
        try:
            results = await asyncio.get_running_loop().run_in_executor(
                self._infer_thread, extractor.extract_documents, documents
            )
        except Exception as error:
            if len(jobs) > 1:
                for job in jobs:
                    await self._run([job], threshold)
            elif not jobs[0].future.done():
                jobs[0].future.set_exception(error)
            return
        start = 0
        for job in jobs:
            if not job.future.done():
                job.future.set_result(results[start : start + len(job.documents)])
            start += len(job.documents)


def _at_threshold(extractor: Extractor, threshold: float | None) -> Extractor:
    """The extractor with another relation threshold; a shallow copy shares the loaded model."""
    if threshold is None:
        return extractor
    variant = copy.copy(extractor)
    variant.threshold = threshold
    return variant
