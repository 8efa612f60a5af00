from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from docmill.result import DocumentPage, OcrResult
from docmill.settings import DEFAULT_MODEL_SET
from tests.worker.drawn import DrawnPage, draw_page
from tests.worker.outputs import result_of


@pytest.fixture(scope="session")
def drawn() -> DrawnPage:
    return draw_page()


@pytest.fixture(scope="session")
def read(engine_for) -> Callable[..., OcrResult]:  # type: ignore[no-untyped-def]
    """read(image, page=None, **options) -> the real engine's result for a BGR page, word
    boxes on."""
    engine, _ = engine_for(DEFAULT_MODEL_SET)

    def run(image: np.ndarray, page: DocumentPage | None = None, **options: object) -> OcrResult:
        found = engine.run([image], engine.options.merged({"word_boxes": True, **options}))[0]
        return result_of(found, image.shape[1], image.shape[0], page)

    return run
