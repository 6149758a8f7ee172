"""The `channels` stage: remove whole channels (and optionally residual blocks), then fine-tune.

Optionally network slimming's BatchNorm penalty first; a budget is a share of the model
as the stage receives it. The result is a new, physically smaller Keras model. With
`distill_recovery`, the model as the stage receives it teaches the fine-tuning.
"""

from tfcompress import _tasks, prune
from tfcompress._checks import check_that
from tfcompress._choices import CHANNEL_CRITERIA, DATA_DRIVEN_CRITERIA, SCORE_EXAMPLES
from tfcompress._graph import flat_copy, nested_models
from tfcompress.pipeline.schema import (
    Key,
    RecipeError,
    boolean,
    choice,
    count,
    is_positive_integer,
    is_real,
    number,
    positive,
    positive_integer,
    strings,
)
from tfcompress.pipeline.stage import Stage


def _budget(name, value):
    ok = (
        isinstance(value, dict)
        and len(value) == 1
        and next(iter(value)) in ("parameters", "macs")
        and is_real(next(iter(value.values())))
        and next(iter(value.values())) > 0
    )
    check_that(ok, name, value, "{parameters: n} or {macs: n}, n a share in (0, 1) or a count")


def _blocks(name, value):
    names = isinstance(value, list) and all(isinstance(item, str) and item for item in value)
    expected = "a list of residual blocks' Add layer names, or how many to drop"
    check_that(names or is_positive_integer(value), name, value, expected)


def _check(recipe):
    settings = recipe["stages"]["channels"]
    if settings["ratio"] is not None and settings["budget"] is not None:
        raise RecipeError("`stages.channels` takes `ratio` or `budget`, not both: a budget finds its own ratio.")
    if settings["steps"] > 1 and settings["finetune_epochs"] < 1:
        raise RecipeError("`stages.channels.steps` > 1 fine-tunes after each step: set `finetune_epochs` >= 1.")
    if settings["penalty_epochs"] is not None and not settings["gamma_penalty"]:
        raise RecipeError(
            "`stages.channels.penalty_epochs` trains with the BatchNorm gamma penalty, which is off: set "
            "`gamma_penalty` above 0 (e.g. 1e-4), or remove `penalty_epochs`."
        )


def _title(settings):
    if settings["budget"]:
        ((key, value),) = settings["budget"].items()
        how_many = f"to {value:.0%} of the {key}" if value < 1 else f"to {value:,.0f} {key}"
    else:
        how_many = f"{0.5 if settings['ratio'] is None else settings['ratio']:.0%}"
    return (
        f"Removing channels ({how_many}, {settings['criterion']}) in {settings['steps']} step(s), "
        f"{settings['finetune_epochs']} fine-tuning epochs each"
        + (", distilled from the unpruned model" if settings["distill_recovery"] else "")
    )


def _channels(context, settings):
    before = model = context.model
    if settings["gamma_penalty"]:
        model = prune.gamma_penalty(model, settings["gamma_penalty"])
        epochs = settings["penalty_epochs"] or 2
        context.fit(model, "penalty", epochs, learning_rate=settings["learning_rate"])
        model = prune.gamma_penalty(model, 0.0)
    budget = settings["budget"]
    if budget:  # a share is of the model as the stage received it, before any block is dropped
        ((key, value),) = budget.items()
        budget = {key: int(value * prune.cost(model)[key]) if value < 1 else value}
    if settings["drop_blocks"]:
        model = prune.drop_blocks(model, _blocks_to_drop(context, model, settings["drop_blocks"]))
    choose = {
        "criterion": settings["criterion"],
        "protect": settings["protect"],
        "allocation": settings["allocation"],
        "budget": budget,
    }
    training = {"learning_rate": settings["learning_rate"], "batch_size": context.batch_size,
                "callbacks": [context.board("channels", model)], "verbose": context.verbose, "task": context.task.kind,
                "teacher": before if settings["distill_recovery"] else None}  # fmt: skip
    data = (context.x_train, context.y_train)
    if settings["steps"] > 1:
        model, _ = prune.iterative(
            model, data, settings["ratio"], steps=settings["steps"], epochs_per_step=settings["finetune_epochs"],
            finetune_options=training, **choose,
        )  # fmt: skip
    else:
        scoring = (context.x_train[:SCORE_EXAMPLES], context.y_train[:SCORE_EXAMPLES])
        model = prune.channels(
            model, settings["ratio"], data=scoring if settings["criterion"] in DATA_DRIVEN_CRITERIA else None, **choose
        )
        if settings["finetune_epochs"]:
            prune.finetune(model, data, epochs=settings["finetune_epochs"], **training)
        else:
            _tasks.compile_for(model, settings["learning_rate"], context.task)
    context.notes["widths"] = _widths(before, model)
    return model


def _blocks_to_drop(context, model, blocks):
    if not isinstance(blocks, int):
        return blocks
    # The ones whose loss costs least, measured on training examples.
    examples = SCORE_EXAMPLES * 4
    data = (context.x_train[:examples], context.y_train[:examples])
    measured = prune.residual_blocks(model, data=data, task=context.task.kind)
    if len(measured) < blocks:
        raise ValueError(
            f"`stages.channels.drop_blocks` asks for {blocks} blocks, but the model has {len(measured)} "
            "residual blocks whose branch can be dropped."
        )
    return [block["add"] for block in sorted(measured, key=lambda block: block["drop"])[:blocks]]


def _widths(before, after) -> dict:
    """Output channels of every pruned or kept layer, before and after the stage (0: dropped)."""
    before = flat_copy(before) if nested_models(before) else before  # the stage prunes the flat copy
    old, new = prune.plan_channels(before, 0.0).widths(), prune.plan_channels(after, 0.0).widths()
    return {name: [width, new.get(name, (0,))[0]] for name, (width, _) in old.items()}


STAGE = Stage(
    name="channels",
    schema={
        "ratio": Key(number(0, 1, high_open=True), None),  # 0.5 unless a budget is given
        "budget": Key(_budget, None),
        "criterion": choice(CHANNEL_CRITERIA, "l1"),
        "allocation": choice(("uniform", "global"), "uniform"),
        "protect": Key(strings("a list of layer names ('first', 'last': the first and last prunable layers)"), []),
        "steps": Key(positive_integer, 1),
        "finetune_epochs": Key(count, 2),
        "gamma_penalty": Key(number(0), 0.0),
        "penalty_epochs": Key(positive_integer, None),  # 2 when gamma_penalty is on
        "drop_blocks": Key(_blocks, []),
        "learning_rate": Key(positive, 5e-4),
        "distill_recovery": Key(boolean, False),
    },
    title=_title,
    run=_channels,
    check=_check,
)
