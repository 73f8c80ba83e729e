"""Property tests for Gibbs blocks: anyone who writes a block can check it in a few lines.

* `check_block(block, data, state)`: the mechanical contract (declared writes and reads,
  stable shapes and dtypes, purity, keys, jit and vmap, finite draws and log densities).
* `geweke_test(model, data_shapes)`: Geweke's joint-distribution test: the Gibbs sweep must
  leave p(state, data) invariant. The sharpest test of a block's maths; its report ends in
  pass, fail or inconclusive (too few effective draws to judge: run more chains), with the
  reason.
* `sbc(model, data_shapes)`: simulation-based calibration, which also exercises `init` and
  convergence from a start away from the truth.
* `moseq.testing.joint`: what those tests share (joint draws of data and state, test
  functions, compiling a whole test as one program), to build other tests of a sampler;
  `moseq.testing.verdict`: the multiple-comparison correction and the reports' verdict.
* `moseq.testing.strategies`: hypothesis strategies (hyperparameters, transition matrices,
  SPD matrices, state sequences with ragged masks, ragged recordings). It needs hypothesis
  and is not imported here.

A typical test of a new block::

    model = GibbsScheduler([StickyDirTransitions(3, kappa=3.0), MyDynamics(...),
                            HMMStates(my_dynamics)], data_keys=("x", "mask"))
    data, state = model.simulate(0, {"mask": jnp.ones((2, 30))})
    check_block(my_dynamics, data, state)
    assert geweke_test(model, {"mask": jnp.ones((2, 30))}, 2000).passed

Keep the models small (a few states, 2 recordings of 20-40 frames): the tests compile the
whole model once and then run thousands of sweeps in a second. `notebooks/custom_block.ipynb`
walks through it.
"""

from moseq.testing import joint
from moseq.testing.contract import ContractError, check_block
from moseq.testing.geweke import GewekeReport, GewekeRow, geweke_test
from moseq.testing.joint import LOG_JOINT, default_test_functions, joint_draw
from moseq.testing.sbc import SBCReport, SBCRow, rank_uniformity, sbc
from moseq.testing.verdict import Verdict, multiple_comparison

__all__ = [
    "LOG_JOINT",
    "ContractError",
    "GewekeReport",
    "GewekeRow",
    "SBCReport",
    "SBCRow",
    "Verdict",
    "check_block",
    "default_test_functions",
    "geweke_test",
    "joint",
    "joint_draw",
    "multiple_comparison",
    "rank_uniformity",
    "sbc",
]
