"""scikit-learn's estimator checks, at default and at small fast settings."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from sk_dim import CMCTransformer, DeepInfoMaxTransformer

# Every check sk_dim is expected to fail, with the reason. Keep this short.
EXPECTED_FAILED_CHECKS: dict[str, dict[str, str]] = {}


def expected_failed_checks(estimator):
    return EXPECTED_FAILED_CHECKS.get(type(estimator).__name__, {})


@parametrize_with_checks(
    [
        DeepInfoMaxTransformer(),
        DeepInfoMaxTransformer(n_components=4, max_epochs=2, batch_size=16, layer="y"),
        CMCTransformer(),
        CMCTransformer(
            n_components=4, n_negatives=8, max_epochs=2, batch_size=16, layer="embedding"
        ),
    ],
    expected_failed_checks=expected_failed_checks,
)
def test_sklearn_compatible(estimator, check):
    check(estimator)
