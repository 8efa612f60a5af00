"""Each stage's pre- and post-processing on inputs with known answers (no models)."""

import cv2
import numpy as np
import pytest

from docmill.options import DEVICE_DEFAULTS, EngineOptions
from worker.engine import cls, det, rec
from worker.engine.lineimage import line_batch, line_tensor
from worker.engine.pixels import mean_std_affine, pixel_batch


@pytest.mark.parametrize(
    "limit_type,limit,hw,expected",
    [
        ("max", 960, (1000, 2000), (480, 960)),  # long side capped
        ("max", 960, (300, 400), (288, 384)),  # small image: only rounded (half to even)
        ("min", 736, (500, 1000), (736, 1472)),  # short side raised
        ("min", 736, (1000, 1500), (992, 1504)),  # already above: rounding only
        ("resize_long", 640, (100, 200), (320, 640)),  # long side always set
        ("max", 960, (1, 1), (32, 32)),  # never below 32
    ],
)
def test_det_resized_shape(limit_type, limit, hw, expected):
    opts = EngineOptions(det_limit_type=limit_type, det_limit_side_len=limit)
    assert det.resized_shape(*hw, opts) == expected


def test_det_batch_normalises_bgr_channels_with_their_own_mean_and_std():
    image = np.zeros((64, 64, 3), dtype=np.uint8)
    image[..., 0], image[..., 1], image[..., 2] = 255, 128, 0  # B, G, R
    item = det.preprocess(image, EngineOptions())
    tensor = det.batch([item], (96, 64), EngineOptions()).normalized()
    assert tensor.shape == (1, 3, 96, 64)
    expected = [(1 - 0.485) / 0.229, (128 / 255 - 0.456) / 0.224, (0 - 0.406) / 0.225]
    np.testing.assert_allclose(tensor[0, :, 0, 0], expected, rtol=1e-5)
    assert np.all(tensor[0, :, 64:] == 0)  # the canvas beyond the page


def test_det_canvas_rounds_up_to_multiple():
    assert det.canvas_shape((480, 960), 32) == (480, 960)
    assert det.canvas_shape((480, 960), 128) == (512, 1024)


def _lines_of_height(height: float, count: int) -> list[np.ndarray]:
    return [np.array([[10, y], [900, y], [900, y + height], [10, y + height]], np.float32)
            for y in range(0, count * 40, 40)]


SMALL = EngineOptions(det_limit_side_len=1280)


def test_det_small_print_is_judged_by_line_height_at_dets_scale():
    """A 4960-pixel-wide page at 1280: a 40-pixel line is 10 pixels at det's scale (small),
    a 60-pixel one 15 (not); a page of a few lines is never judged."""
    finer = det.finer(SMALL)
    assert finer is not None and finer.det_limit_side_len == 2560
    assert det.small_text(_lines_of_height(40, 12), (3508, 4960), SMALL, finer)
    assert not det.small_text(_lines_of_height(60, 12), (3508, 4960), SMALL, finer)
    assert not det.small_text(_lines_of_height(40, det.SMALL_TEXT_MIN_LINES - 1), (3508, 4960), SMALL, finer)


def test_det_small_print_is_not_detected_again_where_no_finer_scale_is_to_be_had():
    finer = det.finer(SMALL)
    assert not det.small_text(_lines_of_height(8, 12), (1000, 1200), SMALL, finer)  # det already sees it whole
    assert det.finer(SMALL.merged({"det_small_text_side_len": 0})) is None
    assert det.finer(SMALL.merged({"det_limit_type": "min"})) is None
    coarser = SMALL.merged({"det_limit_side_len": 3000})
    assert not det.small_text(_lines_of_height(10, 12), (3508, 4960), coarser, det.finer(coarser))


@pytest.mark.models
@pytest.mark.slow
def test_a_strip_of_small_print_is_read_whole_by_the_finer_detection(engine_for):
    """The bench's ledger strip: at 1280 the detector misses whole rows of its 6 pt lines;
    detected again at 2560, every line reads exactly."""
    from bench.small_print import ledger_strip
    from docmill.settings import DEFAULT_MODEL_SET

    engine, _ = engine_for(DEFAULT_MODEL_SET)
    image, truth = ledger_strip()
    read = {side: [line.text for line in engine.run([image], engine.options.merged(
        {"det_small_text_side_len": side}))[0].lines] for side in (0, 2560)}
    assert sorted(read[2560]) == sorted(truth)
    assert len(set(read[0]) & set(truth)) < len(truth)


def test_det_postprocess_finds_rectangle_and_scales_to_source():
    prob = np.zeros((320, 640), dtype=np.float32)
    prob[100:120, 100:300] = 0.9  # one text kernel in the 2x-downscaled map
    boxes = det.postprocess(prob, src_hw=(640, 1280), opts=EngineOptions())
    assert len(boxes) == 1
    box = boxes[0]
    # contour through pixel centres: 199 x 19, unclip distance = 199*19*1.5/436 ~ 13 px,
    # then scaled x2 to the source
    d = 199 * 19 * 1.5 / 436
    assert box[0][0] == pytest.approx(2 * (100 - d), abs=3)
    assert box[2][0] == pytest.approx(2 * (299 + d), abs=3)
    assert box[0][1] == pytest.approx(2 * (100 - d), abs=3)
    assert box[2][1] == pytest.approx(2 * (119 + d), abs=3)


def test_det_postprocess_drops_low_score_and_tiny_regions():
    prob = np.zeros((200, 200), dtype=np.float32)
    prob[10:30, 10:100] = 0.5  # above thresh 0.3 but box score 0.5 < box_thresh 0.6
    prob[150:152, 150:152] = 0.99  # 2 px: below min size
    assert det.postprocess(prob, (200, 200), EngineOptions()) == []
    assert len(det.postprocess(prob, (200, 200), EngineOptions(det_box_thresh=0.4))) == 1


def test_det_a_line_among_more_specks_than_the_candidate_cap_is_still_found():
    """A textured photo gives thousands of one-pixel specks; capping candidates in
    findContours' order dropped the text itself (the shared img_11.jpg turned 8 degrees)."""
    prob = np.zeros((200, 400), np.float32)
    prob[50:190:4, 10:390:4] = 0.9  # 3,325 specks, each a contour of its own
    prob[14:30, 50:350] = 0.9  # one line of text, above them
    boxes = det.postprocess(prob, (200, 400), EngineOptions(det_max_candidates=1000))
    assert len(boxes) == 1 and boxes[0][:, 1].min() <= 14 and boxes[0][:, 1].max() >= 29


def test_line_batch_keeps_aspect_scales_to_plus_minus_one_and_pads_with_zeros():
    rng = np.random.default_rng(3)
    white = np.full((20, 40, 3), 255, dtype=np.uint8)
    noisy = rng.integers(0, 256, (24, 30, 3), dtype=np.uint8)
    pixels = line_batch([white, noisy], 48, 192)
    assert pixels.shape == (2, 48, 192, 3) and pixels.valid.tolist() == [[48, 96], [48, 60]]
    batch = pixels.normalized()
    assert batch.shape == (2, 3, 48, 192) and batch.dtype == np.float32
    assert np.allclose(batch[0, :, :, :96], 1.0) and np.all(batch[0, :, :, 96:] == 0)
    expected = cv2.resize(noisy, (60, 48)).astype(np.float32).transpose(2, 0, 1) / 127.5 - 1.0
    np.testing.assert_allclose(batch[1, :, :, :60], expected, atol=1e-6)
    assert np.all(batch[1, :, :, 60:] == 0)
    np.testing.assert_array_equal(batch[1], line_tensor(noisy, 48, 192))


def test_pixel_batch_is_the_per_channel_normalisation_with_zero_padding():
    rng = np.random.default_rng(4)
    tall, wide = rng.integers(0, 256, (31, 17, 3), dtype=np.uint8), rng.integers(0, 256, (20, 40, 3), dtype=np.uint8)
    scale, shift = [0.5, 2.0, -1.0], [1.0, -3.0, 0.25]
    batch = pixel_batch([tall, wide], (32, 48), scale, shift)
    assert batch.shape == (2, 32, 48, 3) and batch.valid.tolist() == [[31, 17], [20, 40]]
    out = batch.normalized()
    for item, pixels in zip(out, (tall, wide)):
        height, width = pixels.shape[:2]
        expected = pixels.astype(np.float32).transpose(2, 0, 1) * np.array(scale, np.float32)[:, None, None]
        expected += np.array(shift, np.float32)[:, None, None]
        np.testing.assert_array_equal(item[:, :height, :width], expected)
        assert not item[:, height:].any() and not item[:, :, width:].any()
    padded = batch.padded(4)
    assert padded.shape == (4, 32, 48, 3) and padded.valid.tolist()[2:] == [[0, 0], [0, 0]]
    assert not padded.normalized()[2:].any()


def test_a_lone_page_that_fills_its_canvas_is_not_copied():
    page = np.zeros((64, 32, 3), np.uint8)
    assert np.shares_memory(pixel_batch([page], (64, 32), [1.0] * 3, [0.0] * 3).pixels, page)


def test_mean_std_affine_is_pixel_over_255_minus_mean_over_std():
    scale, shift = mean_std_affine((0.5, 0.25, 0.0), (0.5, 0.25, 1.0))
    for value in (0, 51, 255):
        for c, (mean, std) in enumerate(((0.5, 0.5), (0.25, 0.25), (0.0, 1.0))):
            assert value * scale[c] + shift[c] == pytest.approx((value / 255 - mean) / std)


def test_cls_postprocess_reports_each_crops_own_verdict():
    probs = np.array([[0.95, 0.05], [0.05, 0.95], [0.2, 0.8]], dtype=np.float32)
    angles = cls.postprocess(probs)
    assert [(a.angle, a.rotate) for a in angles] == [(0, False), (180, True), (180, True)]
    assert angles[1].score == pytest.approx(0.95) and angles[2].score == pytest.approx(0.8)


def _verdicts(*pairs: tuple[int, float]) -> list[cls.Angle]:
    return [cls.Angle(angle, score, angle == 180) for angle, score in pairs]


def test_cls_a_line_turned_against_an_upright_page_needs_strong_evidence():
    opts = EngineOptions()
    verdicts = _verdicts((0, 0.99), (0, 0.98), (180, 0.95), (180, 0.999), (0, 0.97))
    angles = cls.decide(verdicts, [8, 6, 7, 9, 5], opts).lines
    assert [a.angle for a in angles] == [0, 0, 0, 180, 0]
    assert angles[2].score == pytest.approx(0.05)  # the probability of the angle applied


def test_cls_short_crops_follow_the_page_majority():
    opts = EngineOptions()
    upright = cls.decide(_verdicts((0, 0.99), (0, 0.99), (180, 0.999)), [9, 7, 0.8], opts).lines
    assert [a.angle for a in upright] == [0, 0, 0]  # the "6" that looks like an upside-down "9"
    upside_down = cls.decide(_verdicts((180, 0.99), (180, 0.97), (0, 0.999), (0, 0.6)), [9, 7, 0.8, 5],
                             opts).lines
    assert [a.angle for a in upside_down] == [180, 180, 180, 180]


def test_cls_a_page_with_no_judgeable_crop_stays_upright():
    angles = cls.decide(_verdicts((180, 0.99), (180, 0.995)), [1.0, 1.5], EngineOptions()).lines
    assert [a.rotate for a in angles] == [False, False]


def test_rec_ctc_collapses_repeats_and_drops_blanks():
    chars = rec.output_characters(["a", "b"])  # blank, a, b, space
    steps = [1, 1, 0, 1, 2, 2, 3, 0]  # a a - a b b _ -  -> "aab "
    probs = np.full((1, len(steps), 4), 0.0, dtype=np.float32)
    for t, k in enumerate(steps):
        probs[0, t, k] = 0.9 if k else 0.99
    probs[0, 0, 1] = 0.5
    out = rec.postprocess([probs], chars)[0]
    assert out.text == "aab "
    assert out.score == pytest.approx(np.mean([0.5, 0.9, 0.9, 0.9]))


def test_rec_empty_line_scores_zero():
    probs = np.zeros((1, 5, 4), dtype=np.float32)
    probs[0, :, 0] = 1.0
    out = rec.postprocess([probs], rec.output_characters(["a", "b"]))[0]
    assert out.text == "" and out.score == 0.0


@pytest.mark.parametrize("crop_w,expected", [(100, 320), (320, 320), (330, 352), (961, 992)])
def test_rec_padded_width_depends_on_the_crop_alone(crop_w, expected):
    crop = np.zeros((48, crop_w, 3), dtype=np.uint8)
    assert rec.padded_width(crop, EngineOptions(), fixed_width=None) == expected
    assert rec.padded_width(crop, EngineOptions(), fixed_width=256) == 256


def test_rec_batch_count_by_columns_is_capped_and_never_empty():
    assert rec.batch_count(320, EngineOptions(rec_batch_size=6)) == 6
    by_width = EngineOptions(rec_batch_size=256, rec_batch_width=32768)
    assert rec.batch_count(96, by_width) == 256  # 341 fit: capped at the batch size
    assert rec.batch_count(320, by_width) == 102
    assert rec.batch_count(65536, by_width) == 1


def test_every_device_default_is_a_valid_option():
    for device, options in DEVICE_DEFAULTS.items():
        merged = EngineOptions().merged(options)
        assert {key: getattr(merged, key) for key in options} == options, device


@pytest.mark.models
@pytest.mark.slow
def test_the_cuda_batching_reads_every_line_as_the_cpu_defaults_do(engine_for, sample_pages):
    """Bigger batches and det canvases (the CUDA defaults, run here on CPU) leave every
    line's text as it is."""
    engine, _ = engine_for("pp-ocrv6")
    images, _ = sample_pages
    pages = list(images.values())
    cuda_like = engine.options.merged(DEVICE_DEFAULTS["cuda"])
    for cpu, cuda in zip(engine.run(pages), engine.run(pages, cuda_like)):
        assert [line.text for line in cuda.lines] == [line.text for line in cpu.lines]
