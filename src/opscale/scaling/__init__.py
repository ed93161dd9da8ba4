"""Scaling-law statistics of a study cube: robust joint law, OLS, model choice, backtest.

Modules: ``observations`` (one row per model, groups), ``laws`` (the additive laws),
``fitting`` (Huber/least-squares fits and the seed bootstrap), ``robust`` (the robust
law's tables), ``ols``, ``comparison`` (AIC/BIC), ``backtest``, ``allocation``;
``report`` collects their rows. ``opscale.fit`` runs them per group.

Every fit is on the **unsquared** test relative L2 error ``err`` (``fit.response``), in
log space, per *group* (one combination of the swept axes that are neither the data size
nor the model size, e.g. one input dimension). The theory's squared-error data rates are
converted to this error in :mod:`opscale.theory`.

Methods (statsmodels and scipy; nothing hand-optimised)
-------------------------------------------------------
robust
    The additive law ``err = E + A N^-alpha + B n^-beta`` (Hoffmann et al. 2022,
    approach 3; Besiroglu et al. 2024), fitted to ``log err`` with the Huber loss by
    ``scipy.optimize.least_squares`` (trf, bounds E >= 0, exponents in [0, 10]). Starts:
    a grid of exponents and floors, amplitudes from non-negative least squares
    (``scipy.optimize.nnls``); the ``fit.refine`` starts of lowest Huber cost are
    refined, the best end point wins. The Huber scale is 1.345 times the noise scale of
    log err within grid points (MAD of seeds about their point's mean), so the fit is
    ~95% efficient under Gaussian noise and robust to outlying models.
    95% intervals: percentile bootstrap with ``fit.bootstrap`` resamples of the seeds
    *within each grid point*, each resample refitted from the estimate. Deviations from
    the point's mean are inflated by sqrt(m/(m-1)) (m seeds at the point; Davison &
    Hinkley 1997, sec. 3.3), without which a resample of 3 seeds under-states the
    variance by a third. A grid point with one model contributes no resampling noise.
data, model, joint
    Log-log OLS (statsmodels): ``log err ~ log n + C(log N)``, ``~ log N + C(log n)``,
    ``~ log n + log N``, with cluster-robust standard errors clustered by seed. A seed's
    data draws are nested across n (smaller training sets are prefixes of larger ones),
    so clustering by seed *is* clustering by data draw. Intervals use Student's t with
    (clusters - 1) degrees of freedom; one seed falls back to HC1 and says so.
    **Pre-floor rule**: OLS uses only models whose error the robust law predicts to be
    at least ``fit.floor_factor`` (default 2) times its fitted floor E, i.e. the floor
    is at most half of the error. The rest are listed as excluded (from OLS only). If the
    rule would leave an axis with fewer than two values, OLS uses every model and says so.
    Without a robust fit the rule cannot be applied, and the table says so.
    OLS is the baseline: with a floor (or the other axis's term acting as one) its slopes
    are biased towards zero, which the robust law corrects.
comparison
    Alternatives by AIC and BIC (Gaussian likelihood of log err, least squares; the
    noise variance counts as a parameter): the log-linear product law (OLS), the
    additive power law without and with floor, and the logarithmic law of the general
    Lipschitz case, ``A (log x / log log x)^-c`` per axis, without and with floor
    (defined for x > e^e, where it decreases).
backtest
    For each axis: fit the robust law (and OLS) without the largest value of that axis
    (``fit.backtest_bootstrap`` resamples), predict the held-out models, and report the
    prediction error of the median over seeds and how many held-out models fall inside
    the 95% prediction interval (robust: bootstrap parameter draws plus resampled
    residuals; OLS: statsmodels' interval for a new observation).
allocation
    Training FLOPs are fitted as ``C = k N^a n^b`` (OLS on the stored counts). With the
    robust law, the compute-optimal (N, n) at budget C minimises ``A N^-alpha +
    B n(N, C)^-beta`` in closed form (as Hoffmann et al.), for every bootstrap draw
    (intervals), at budgets from the smallest trained model's cost to ten times the
    largest; ``extrapolated`` flags optima outside the trained grid.

fit.nc's tables: see :mod:`opscale.tables`.
"""
