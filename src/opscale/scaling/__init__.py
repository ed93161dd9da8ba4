"""Scaling-law statistics of a study cube or a table of runs.

Modules: ``observations`` (one row per model, groups; cubes and long-format tables),
``laws`` (the additive laws), ``fitting`` (Huber/least-squares fits, bounds and
identifiability), ``bootstrap`` (the resampling schemes), ``robust`` (the robust law's
tables), ``ols``, ``comparison`` (AIC/BIC), ``slopes`` (asymptotic exponent vs local
slope), ``sizes`` (the model axis in other counts of model size, the data axis on the
envelope min over N), ``backtest``, ``allocation``, ``shapes`` (claims across groups);
``report`` collects their rows. ``opscale.fit`` runs them per group (``shapes`` across
them).

Every fit is on the **unsquared** response ``err`` (``fit.response`` of a cube, any
positive error of a table), in log space, per *group* (one combination of the swept axes
that are neither the data size nor a model size, e.g. one input dimension).

Methods (statsmodels and scipy; nothing hand-optimised)
-------------------------------------------------------
robust
    The additive law ``err = E + A N^-alpha + B n^-beta`` (Hoffmann et al. 2022,
    approach 3; Besiroglu et al. 2024), fitted to ``log err`` with the Huber loss by
    ``scipy.optimize.least_squares`` (trf; bounds E in [0, max err], log A in [-50, 50],
    power exponents in [0, 10]). Starts: a grid of exponents and floors, amplitudes by
    non-negative least squares; the ``fit.refine`` best starts are refined. Huber scale:
    ``fit.huber_delta``, else 1.345 times the noise of log err between replicates, else
    1.345 times the robust (MAD) scale of a least-squares fit's residuals.
    Intervals: percentile bootstrap (``fit.bootstrap`` resamples) by
    ``fit.bootstrap_scheme`` (see ``bootstrap``: whole seeds by default, residuals for
    unreplicated data), each resample refitted from the estimate and every tenth also
    from the grid of starts. A parameter at a bound at the estimate, or in more than 2.5%
    of the draws, is censored and not identified: its exponent gets no verdict, and the
    curves, backtest and allocation built from those draws say so. Where the floor E is
    censored at 0, the law without a floor is bootstrapped too and every interval is the
    union of the two laws' (``fitting.fit_reported_law``). Where no scheme applies there
    is no interval, and the rows say why.
data, model, joint
    Log-log OLS (statsmodels): ``log err ~ log n + C(log N)``, ``~ log N + C(log n)``,
    ``~ log n + log N``, on every model, with cluster-robust standard errors clustered by
    seed and Student's t with (clusters - 1) degrees of freedom; one seed falls back to
    HC1. An OLS slope is the average local slope over the sampled range (a floor or the
    other term biases it towards zero as an estimate of the exponent).
slopes
    Per axis, the two named quantities: the robust law's asymptotic exponent, and the
    local slope -d log err / d log x over the sampled models (of the robust law, with
    bootstrap intervals; of the joint OLS; and its spread across every compared law).
comparison
    Alternatives by AIC and BIC (Gaussian likelihood of log err, least squares; the
    noise variance counts as a parameter): the log-linear product law (OLS), the
    additive power law without and with floor, and the logarithmic law of the general
    Lipschitz case, ``A (log x / log log x)^-c`` per axis (exponent uncapped), without
    and with floor. |ΔAIC| < 2 is printed as indistinguishable; a law with a parameter at
    a bound names it.
backtest
    For each axis: fit the robust law (and OLS) without the largest value of that axis
    (``fit.backtest_bootstrap`` resamples), predict the held-out models, and report the
    prediction error of the median over seeds and how many held-out models fall inside
    the prediction interval (robust: bootstrap parameter draws plus resampled
    residuals; OLS: statsmodels' interval for a new observation).
sizes
    The robust law refitted with the model axis in N without the DeepONet's sensor layer
    and in its basis count p (verdicts only in N, the count the bound uses), and the
    power law with floor on the envelope min over N per (n, seed), seeds as clusters.
shapes
    Across groups: the exponents' slope on b (WLS), and the difference of the exponents
    between the largest and smallest ambient dimension D or sensor count n_x (intervals
    by the MOVER rule); verdicts holds / does not hold.
allocation
    Training FLOPs are fitted as ``C = k N^a n^b`` (OLS on the stored counts). With the
    robust law, the compute-optimal (N, n) at budget C minimises ``A N^-alpha +
    B n(N, C)^-beta`` in closed form (as Hoffmann et al.), for every bootstrap draw
    (intervals), at budgets from the smallest trained model's cost to ten times the
    largest; ``extrapolated`` flags optima outside the trained grid.

fit.nc's tables: see :mod:`opscale.tables`.
"""
