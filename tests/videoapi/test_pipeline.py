"""test.mp4 end to end through the project's own decode path and the real Triton."""

import pytest

from videoapi.adapters.triton import ShotModelClient
from videoapi.pipeline.decode import iter_model_frames
from videoapi.pipeline.inference import predict_frames
from videoapi.pipeline.probe import probe
from videoapi.pipeline.shots import ShotList, score_transitions, shot_spans, transitions


@pytest.mark.slow
def test_test_mp4_shots_match_the_reference_package(triton, reference_video, reference_predictions):
    info = probe(reference_video)
    progress = []
    with ShotModelClient(triton.grpc_url) as client:
        predictions = predict_frames(iter_model_frames(reference_video), client, on_progress=progress.append)
    assert predictions.frame_count == info.frame_count == 5301
    assert progress == sorted(progress) and progress[-1] == 5301

    ours = shot_spans(predictions.single_frame)
    theirs = shot_spans(reference_predictions)
    score = score_transitions(transitions(ours), transitions(theirs), tolerance=2)
    print(f"test.mp4: {len(ours)} shots (reference {len(theirs)}), {score}")
    assert len(theirs) > 50  # many real cuts
    assert score.f1 >= 0.98

    shots = ShotList.from_predictions(predictions.single_frame, fps=info.fps)
    assert shots.shots[0].start_frame == 0 and shots.shots[-1].end_frame == 5300
    assert all(a.end_frame < b.start_frame for a, b in zip(shots.shots, shots.shots[1:]))
