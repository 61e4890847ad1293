"""Names that become SQL identifiers."""
from __future__ import annotations

import pytest

from dlprov.errors import NameRejected
from dlprov.model.names import attribute_name
from dlprov.model.names import check_name


@pytest.mark.parametrize("name", ["id", "ID", "train_task_id", "test_task_id"])
def test_attributes_cannot_shadow_a_set_tables_own_columns(name):
    with pytest.raises(NameRejected, match="collide"):
        check_name("attribute", name)
    assert check_name("set", name.lower()) == name.lower()  # only attributes collide


@pytest.mark.parametrize("metric, attribute", [
    ("train/loss", "train_loss"), ("val_acc@1", "val_acc_1"), ("id", "m_id"),
    ("task", "m_task"), ("train_task_id", "train_taskid"), ("1st", "m_1st"), ("Loss", "loss"),
])
def test_framework_metric_names_become_storable_attributes(metric, attribute):
    assert attribute_name(metric) == attribute
    assert check_name("attribute", attribute) == attribute
