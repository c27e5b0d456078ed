import numpy as np
import pytest

from dltheory.core.validation import as_float_array, check_choice, check_in_range, check_int, check_positive


def test_messages_name_argument_value_and_allowed():
    with pytest.raises(ValueError, match=r"sigma_w2 must be > 0, got -1\.0"):
        check_positive("sigma_w2", -1.0)
    with pytest.raises(ValueError, match=r"c must lie in \[0, 1\]"):
        check_in_range("c", [0.5, 1.5], 0, 1)
    with pytest.raises(ValueError, match=r"depth must be an integer >= 1, got 0"):
        check_int("depth", 0, minimum=1)
    with pytest.raises(TypeError, match="depth must be an integer"):
        check_int("depth", 2.0)
    with pytest.raises(ValueError, match=r"weights must be one of \['a', 'b'\], got 'c'"):
        check_choice("weights", "c", ["a", "b"])


def test_non_finite_and_non_numeric_rejected():
    with pytest.raises(ValueError, match="q must be finite"):
        as_float_array("q", [1.0, np.nan])
    with pytest.raises(TypeError, match="q must be a real number"):
        as_float_array("q", "abc")


def test_valid_values_pass_through():
    np.testing.assert_array_equal(check_positive("x", [0.0, 1.0], allow_zero=True), [0.0, 1.0])
    assert check_int("n", np.int64(3), minimum=1) == 3
