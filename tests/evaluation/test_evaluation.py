"""jaxhash.evaluation: the package's names stay importable from their old homes."""

from jaxhash import evaluate


def test_old_names_are_the_evaluation_package():
    """README, notebooks and scripts import these from where they were."""
    from jaxhash import evaluation, model_eval, retrieval, retrieval_grid
    from jaxhash.evaluation import encoding

    assert evaluate.evaluate is evaluation.evaluate
    assert evaluate.write_report is evaluation.write_report
    assert model_eval.Evaluator is evaluation.Evaluator
    assert model_eval.report_dir is evaluation.report_dir
    assert retrieval_grid.RetrievalGrid is evaluation.RetrievalGrid
    assert retrieval.encode is encoding.encode
