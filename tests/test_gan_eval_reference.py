"""The real victim images `fl-privacy gan-eval` compares samples with (`victim_records`): the record split's
members and non-members when the run drew one, else the class's training against its test images."""

import torch

from fl_privacy.config import compose_settings
from fl_privacy.data.federation import build_federation
from fl_privacy.lab.pipelines.gan_evaluation import victim_records


def _fingerprints(images: torch.Tensor) -> set[bytes]:
    return {image.numpy().tobytes() for image in images}


def test_without_a_record_split_the_class_training_images_face_its_test_images():
    settings = compose_settings(["+experiment=gan_attack"])
    federation = build_federation(settings.federation)
    splits, victim = federation.splits, settings.attack.gan.victim_class
    members, nonmembers, reference = victim_records(federation, victim)
    assert reference == "train_vs_test"
    assert len(members) == int((splits.train.labels == victim).sum()) > 300
    assert len(nonmembers) == int((splits.test.labels == victim).sum()) > 80
    assert not _fingerprints(members) & _fingerprints(nonmembers)


def test_with_a_record_split_its_members_and_non_members_are_used():
    settings = compose_settings(["+experiment=gan_attribution"])
    federation = build_federation(settings.federation)
    members, nonmembers, reference = victim_records(federation, settings.attack.gan.victim_class)
    assert reference == "record_split"
    assert len(members) == len(federation.record_members)
    assert len(nonmembers) == len(federation.record_nonmembers)
    assert not _fingerprints(members) & _fingerprints(nonmembers)
