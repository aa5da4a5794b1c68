import pytest
import torch
from toy_models import ToyVAE

from collapse_diag import ProtocolError, check_model
from collapse_diag.exceptions import DiagnosticError
from collapse_diag.model.protocol import call_log_likelihood

X = torch.randn(6, 3)


class Broken(ToyVAE):
    """ToyVAE with one method replaced, to break the protocol in one way at a time."""

    def __init__(self, **overrides):
        super().__init__()
        for name, fn in overrides.items():
            setattr(self, name, fn)


def test_valid_model_info():
    info = check_model(ToyVAE(), X)
    assert info.latent_dim == 3 and info.dtype == torch.float32
    assert not info.has_prior and not info.has_num_tokens


def test_missing_encode():
    class NoEncode:
        def log_likelihood(self, x, z):
            return x.sum(1)

    with pytest.raises(ProtocolError, match="has no method encode"):
        check_model(NoEncode(), X)


def test_missing_log_likelihood():
    class NoDecoder:
        def encode(self, x):
            return x, x

    with pytest.raises(ProtocolError, match="has no method log_likelihood"):
        check_model(NoDecoder(), X)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"encode": lambda x: torch.zeros(len(x), 3)}, "must return a pair"),
        ({"encode": lambda x: (torch.zeros(len(x), 3),) * 3}, "must return a pair"),
        ({"encode": lambda x: (torch.zeros(3), torch.zeros(3))},
         r"must have shape \[batch=4, latent_dim\]"),
        ({"encode": lambda x: (torch.zeros(len(x), 3), torch.zeros(len(x), 2))}, "logvar of shape"),
        ({"encode": lambda x: (torch.zeros(len(x), 3, dtype=torch.long),) * 2}, "floating-point"),
        ({"encode": lambda x: (torch.full((len(x), 3), float("nan")),) * 2}, "NaN/Inf"),
        ({"encode": lambda x: [1, 2]}, "must be a Tensor"),
        ({"log_likelihood": lambda x, z: torch.zeros(len(x), 3)}, r"must have shape \[batch=4\]"),
        ({"log_likelihood": lambda x, z: torch.full((len(x),), float("inf"))}, "NaN/Inf"),
        ({"log_likelihood": lambda x, z: 1 / 0}, "failed with ZeroDivisionError"),
        ({"prior": lambda x: (torch.zeros(len(x), 2),) * 2},
         r"prior\(x\) mu must have shape \[batch=4, latent_dim=3\]"),
        ({"num_tokens": lambda x: torch.zeros(len(x))}, "must be positive"),
        ({"num_tokens": lambda x: torch.ones(len(x), 2)}, r"num_tokens\(x\) must have shape"),
    ],
)
def test_protocol_violations_name_the_method(override, message):
    with pytest.raises(ProtocolError, match=message):
        check_model(Broken(**override), X)


def test_protocol_error_is_a_type_error():
    assert issubclass(ProtocolError, TypeError)


def test_dict_inputs_are_sliced_not_inspected():
    class DictModel(ToyVAE):
        def encode(self, x):
            return super().encode(x["a"])

        def log_likelihood(self, x, z):
            return super().log_likelihood(x["a"], z)

    info = check_model(DictModel(), {"a": X, "lengths": torch.arange(6)})
    assert info.latent_dim == 3


def test_call_log_likelihood_raises_diagnostic_error_on_nan():
    model = Broken(log_likelihood=lambda x, z: torch.full((len(z),), float("nan")))
    with pytest.raises(DiagnosticError, match="NaN"):
        call_log_likelihood(model, X, torch.zeros(6, 3))


def test_a_model_left_in_training_mode_is_checked_in_eval_mode_and_put_back():
    class WithDropout(ToyVAE):
        def __init__(self):
            super().__init__()
            self.drop = torch.nn.Dropout(0.5)

        def log_likelihood(self, x, z):
            return super().log_likelihood(x, self.drop(z))

    model = WithDropout()
    model.train()
    info = check_model(model, model.sample(8))
    assert info.latent_dim == 3 and model.training and model.drop.training
