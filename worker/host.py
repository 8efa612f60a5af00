"""Everything one worker process holds for its lifetime: per model version one engine,
its dynamic batcher and item flow (created on first use, after any fork), the I/O pool, the
pixel budget every task thread shares, the document spool, the result writer, the job store
and the metrics."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

from docmill.jobs import JobStore
from docmill.messages import ModelsRef
from docmill.modelset import ModelSet, ModelSetError, locate
from docmill.settings import Settings
from worker.batcher import DynamicBatcher
from worker.engine.pipeline import OcrEngine
from worker.budget import PixelBudget
from worker.documents import DocumentSpool
from worker.flow import ItemFlow
from worker.metrics import Metrics
from worker.middleware.faults import with_faults
from worker.middleware.redelivery import RedeliveryCap
from worker.items import load_item
from worker.writer import ResultWriter

if TYPE_CHECKING:
    from worker.deliverables import DeliverableWriter

IO_THREADS = 8


@dataclass
class LoadedModels:
    model_set: ModelSet
    engine: OcrEngine
    batcher: DynamicBatcher
    flow: ItemFlow


class WorkerHost:
    def __init__(self, settings: Settings, jobs: JobStore, device: str | None = None,
                 max_batch_images: int | None = None, max_delay_ms: float = 20.0,
                 redelivery_cap: int = 3, metrics: Metrics | None = None):
        self.settings = settings
        self.jobs = jobs
        self.device = device
        self.max_batch_images = max_batch_images or settings.batch_images
        self.max_delay_ms = max_delay_ms
        self.redelivery = RedeliveryCap(jobs, redelivery_cap)
        self.metrics = metrics or Metrics()
        self.io = ThreadPoolExecutor(max_workers=IO_THREADS, thread_name_prefix="docmill-io")
        self.writer = ResultWriter(settings, self.metrics)
        self._budget: PixelBudget | None = None  # made with the first engine: its size is by device
        self.spool = DocumentSpool(settings)  # one local copy per document, whichever task reads it
        self._load = with_faults(load_item)
        self._models: dict[str, LoadedModels] = {}
        self._lock = threading.Lock()

    @cached_property
    def deliverables(self) -> DeliverableWriter:
        """The --format writers for the documents a task completes, imported on first use."""
        from worker.deliverables import DeliverableWriter

        return DeliverableWriter(self.writer, self.spool)

    def models(self, ref: ModelsRef) -> LoadedModels:
        """The engine for a pinned model version, fetched and verified on first use."""
        with self._lock:
            if ref.version not in self._models:
                model_set = ModelSet.load(locate(ref.uri, self.settings))
                if model_set.version != ref.version:
                    raise ModelSetError(f"{ref.uri} holds version {model_set.version}, task wants {ref.version}")
                engine = OcrEngine.load(model_set, self.settings, self.device)
                batcher = DynamicBatcher(engine, self.max_batch_images, self.max_delay_ms, self.metrics,
                                         self.settings.engine_streams)
                flow = ItemFlow(batcher, self.writer, self.io, self.settings, self._shared_budget(),
                                self._load, self.spool)
                self.metrics.set_model_set(model_set.name, model_set.version)
                self._models[ref.version] = LoadedModels(model_set, engine, batcher, flow)
            return self._models[ref.version]

    def _shared_budget(self) -> PixelBudget:
        """The one budget every task and model set of this process shares."""
        if self._budget is None:
            self._budget = PixelBudget(self.settings.pixel_budget())
        return self._budget

    def close(self) -> None:
        for loaded in self._models.values():
            loaded.batcher.close()
        self.io.shutdown(wait=True)
