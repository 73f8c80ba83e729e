import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.decomposition import PCA

from moseq.ops.pca import fit_pca


def correlated_frames(shape, num_features=4, seed=0):
    rng = np.random.default_rng(seed)
    mixing = rng.normal(size=(num_features, num_features)) * [3.0, 2.0, 1.0, 0.5]
    return rng.normal(size=(*shape, num_features)) @ mixing.T + 5.0


def assert_same_pca(actual, expected):
    signs = np.sign(np.sum(actual.components_ * expected.components_, axis=1))
    np.testing.assert_allclose(
        actual.components_ * signs[:, None], expected.components_, atol=1e-10
    )
    np.testing.assert_allclose(actual.explained_variance_, expected.explained_variance_, rtol=1e-10)
    np.testing.assert_allclose(actual.mean_, expected.mean_, rtol=1e-12)


def test_fits_only_the_valid_frames_even_when_masked_frames_are_garbage():
    Y = correlated_frames((3, 60))
    mask = np.random.default_rng(1).random((3, 60)) > 0.3
    expected = PCA().fit(Y[mask])
    garbage = np.where(np.random.default_rng(2).random(Y.shape) < 0.5, np.nan, 1e9)
    Y[~mask] = garbage[~mask]
    actual = fit_pca(jnp.asarray(Y), jnp.asarray(mask, dtype=float))
    assert actual.n_components_ == 4
    assert_same_pca(actual, expected)


def test_subsamples_reproducibly_without_replacement():
    Y = correlated_frames((2, 100))
    mask = np.ones((2, 100))
    first = fit_pca(Y, mask, PCA_fitting_num_frames=50)
    second = fit_pca(Y, mask, PCA_fitting_num_frames=50)
    assert first.n_samples_ == 50
    assert_same_pca(first, second)
    assert not np.allclose(first.mean_, PCA().fit(Y.reshape(-1, 4)).mean_)


def test_config_keys_are_ignored_and_verbose_reports(capsys):
    Y = correlated_frames((20,))
    fit_pca(Y, np.ones(20), verbose=True, latent_dim=10, kappa=1e6)
    assert "20" in capsys.readouterr().out


def three_valid_frames():
    mask = np.zeros(20)
    mask[:3] = 1
    return mask


@pytest.mark.parametrize(
    ("mask", "num_frames", "message"),
    [
        (np.ones((3, 20)), 1000, "shape"),
        (three_valid_frames(), 1000, "at least 4 valid frames"),
        (np.ones(20), 3, "at least 4 valid frames"),
        (np.ones(20), 0, "PCA_fitting_num_frames"),
    ],
)
def test_errors(mask, num_frames, message):
    with pytest.raises(ValueError, match=message):
        fit_pca(correlated_frames((20,)), mask, PCA_fitting_num_frames=num_frames)


def test_nan_in_a_valid_frame_is_an_error():
    Y = correlated_frames((20,))
    Y[5, 1] = np.nan
    Y[7, 0] = np.inf
    with pytest.raises(ValueError, match=r"NaN or infinite values in 2 of the frames .*set `mask` "
                                         r"to 0 there"):
        fit_pca(Y, np.ones(20))
    mask = np.ones(20)
    mask[[5, 7]] = 0
    fit_pca(Y, mask)  # masked, they are never read


def test_too_few_frames_names_the_remedy():
    with pytest.raises(ValueError, match=r"needs at least 4 valid frames; `mask` marks 3 .*Mark "
                                         r"more frames valid.*raise `PCA_fitting_num_frames`"):
        fit_pca(correlated_frames((20,)), three_valid_frames())
