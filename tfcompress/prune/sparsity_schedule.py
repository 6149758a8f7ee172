"""When magnitude pruning prunes, and to what sparsity: one record that both engines read.

The schedules are TF-MOT's, so its users find them as they know them: "polynomial" rises from
`initial_sparsity` to `target_sparsity` as `1 - (1 - progress)**3`, "constant" holds the target;
weights are pruned at `begin_step`, then every `frequency` steps, up to `end_step`.
"""

import dataclasses

# TF-MOT's PolynomialDecay exponent: most of the pruning happens early, while there are steps left to recover.
POWER = 3


@dataclasses.dataclass(frozen=True)
class SparsitySchedule:
    """A magnitude-pruning schedule, checked by `tfc.prune.magnitude`.

    Attributes:
      kind: "polynomial" or "constant".
      initial_sparsity: the sparsity at `begin_step` ("polynomial" only; 0 for "constant").
      target_sparsity: the sparsity reached at `end_step`.
      begin_step: the first step that prunes.
      end_step: the last step that prunes; a multiple of `frequency` after `begin_step`.
      frequency: steps between two prunings.
    """

    kind: str
    initial_sparsity: float
    target_sparsity: float
    begin_step: int
    end_step: int
    frequency: int

    def points(self) -> list:
        """Every step that prunes (counted from 0), with the sparsity the masks are recomputed to there."""
        steps = range(self.begin_step, self.end_step + 1, self.frequency)
        return [(step, self.sparsity_at(step)) for step in steps]

    def sparsity_at(self, step: int) -> float:
        """The sparsity of the masks recomputed at `step`."""
        if self.kind == "constant":
            return self.target_sparsity
        progress = min(1.0, max(0.0, (step - self.begin_step) / (self.end_step - self.begin_step)))
        return self.target_sparsity + (self.initial_sparsity - self.target_sparsity) * (1.0 - progress) ** POWER
