"""Signal-propagation diagnosis of any PyTorch model at initialisation: is this network at the edge of chaos?

``report = diagnose(model, inputs)`` runs one forward and one backward pass with hooks on every layer
(``nn.Linear``, ``nn.Conv1d/2d/3d``) and every other leaf module, and compares what it measures with the
mean-field theory of signal propagation (Poole et al. 2016; Schoenholz et al. 2017; Xiao et al. 2018,
docs/xiao/theory.md):

- per layer l: the mean squared pre-activation ``q^l``, the correlation ``c^l`` between pairs of inputs,
  the gradient norm of the weight, and the squared norm of the gradient with respect to the
  pre-activations ``|g^l|^2``; the backward pass uses the loss ``sum_b <f(x_b), v_b>`` with standard Gaussian
  output directions ``v_b`` (a random read-out, the setting of the mean-field gradient analysis);
- per link l -> l + 1 the measured gradient growth ``chi^l = |g^l|^2 / |g^{l+1}|^2``, which mean-field
  theory predicts to be ``sigma_w2 E[phi'(h^l)^2]`` (= chi_1 at the fixed point; Schoenholz et al. 2017,
  eq. 5): < 1 ordered (gradients vanish), > 1 chaotic (they explode), = 1 critical;
- the input-output Jacobian: ``mean(s^2)`` of its singular values from the same backward pass (one
  Hutchinson probe per input: ``E|J_b^T v_b|^2 = tr(J_b J_b^T)``), and with ``jacobian="spectrum"`` the
  extreme singular values and ``mean(s^4)`` of the first input's Jacobian (matrix-free,
  :mod:`dltheory.nn.jacobian`);
- where consecutive layers are joined by an activation the mean-field API knows, the predicted curves of
  :mod:`dltheory.signalprop.layerwise` (parameters inferred from the weights); where they are not (residual
  adds, normalisation, pooling, unknown activations) the report measures, does not predict, and says why.

The verdict ``report.phase`` is the measured chi of the longest covered run of layers ("ordered",
"critical" within ``critical_tol``, or "chaotic"), or None when the theory covers no run of at least two
links. ``report.recommendation`` gives a critical (sigma_w2, sigma_b2) (the small-q* end of the critical
line for bounded activations, where orthogonal weights give dynamical isometry; sigma_b2 = 0 for the ReLU
family) and the :func:`dltheory.nn.init.critical_init_` call that puts the model there.

Skip connections and normalisers: when ``torch.fx`` can trace the model and its graph adds two computed
tensors or contains a LayerNorm / RMSNorm / one-group GroupNorm, the diagnosis follows the graph instead
(``report.mode == "graph"``): every intermediate tensor is recorded and predicted with the rules of
:mod:`dltheory.signalprop.graph` (independent additions, scalings, normalisers; BatchNorm, attention and
pooling are named as not covered and the prediction restarts after them). For a residual stack
``report.residual`` compares the stream's q, c and squared gradient with the residual mean field
(Yang & Schoenholz 2017), ``report.phase`` is the growth verdict (``"stable"``, ``"exploding"``,
``"vanishing"``; :func:`dltheory.signalprop.phases.classify_growth`) and ``report.recommendation`` a
branch multiplier that brings the predicted growth to 2 (``kind="branch_scale"``, carried out by
``.apply``). Models that cannot be traced are diagnosed with hooks, as chains.

The model runs in its current mode (train / eval); buffers (batch-norm running statistics) are restored
afterwards and no ``.grad`` is written. ``report.timings`` gives the seconds of each phase (``trace``,
``forward``, ``backward``, ``theory``, ``total``). Cost: in graph mode the weight-gradient norm of a Linear
layer called once comes from the hook on its output (``||g^T x||`` via the batch Gram matrices), so the
backward pass forms only the gradients the statistics need; the cost relative to a training step of a
1,000-block residual MLP is measured by benchmarks/bench_diagnose_residual.py (recorded on the Benchmarks
page): the per-node work of the diagnosis barely depends on the width, so it weighs most in narrow networks.

Layout: this package's public face is :func:`diagnose`, :class:`DiagnosisReport`, :class:`Recommendation`
and :class:`DiagnoseError`; behind it ``_trace`` (hooks), ``_theory`` (weights -> mean-field parameters),
``_report`` (the report types), ``_plot`` (its figure), ``_adapters`` (fused models, re-initialisation),
``_graph`` (the torch.fx recorder), ``_structured`` (graph-mode predictions and the residual verdict)
and ``_diagnose`` (the entry point). All maths lives in :mod:`dltheory.signalprop`.
"""

from dltheory.nn.diagnose._diagnose import DiagnoseError, diagnose
from dltheory.nn.diagnose._report import DiagnosisReport, Recommendation

__all__ = ["DiagnoseError", "DiagnosisReport", "Recommendation", "diagnose"]
