/* One stream's scoring step in C: `Detector.step_row` without the model step.
 *
 * The arithmetic of edge/detector.py's Python floats path, operation for operation: float32
 * normalisation and residual, float64 distance with the channels summed in order (or their
 * largest, Scorer's norm "max"), the calibrated score (np.interp's rule, exponential tail), the
 * value range, the daily profile (seasonal.DailyProfile), the adaptive score (scoring.Adaptive)
 * and the alert machine (alerts.alert_step_one). Compiled with -ffp-contract=off so that no
 * multiply-add is fused: the results equal the Python path's bit for bit (libm's exp and log1p are
 * the ones Python's math module calls), and the batched numpy path's to the last bit of exp/log1p
 * (tested). It advances the stream's `seen`; the caller steps the model and stores its forecast
 * and state.
 *
 * Why C and not a library: numba compiles the same function (tried: about 1.2 us a call), but
 * importing it and loading its machine code takes a process from 34 to 155 MB resident, past the
 * runtime's 80 MB budget. This call costs a fraction of a microsecond and no memory. The extension
 * is optional: where it does not build (no C compiler), the Python path runs.
 */
#define PY_SSIZE_T_CLEAN
#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION
#include <Python.h>
#include <math.h>
#include <numpy/arrayobject.h>

/* params, float64: the order of edge.detector.ROW_PARAMS */
enum { P_WARMUP, P_TAIL_BETA, P_NOVELTY_MARGIN, P_MIN_STD, P_ADAPTIVE_WARMUP, P_SQUASH, P_HORIZON,
       P_NOVELTY, P_NOVELTY_REFRACTORY, P_DECAY, P_CAP, P_THRESHOLD, P_CLEAR_THRESHOLD, P_RAISE_AFTER,
       P_CLEAR_AFTER, P_COOLDOWN, P_ON_ADAPTIVE, P_NEG_INV_LN10, P_NOVELTY_Z, P_FATIGUE, P_FATIGUE_Z,
       P_FATIGUE_DECAY, P_MAX_NORM, P_CLIP, P_COUNT };
/* profile params, float64: the order of edge.detector.PROFILE_PARAMS */
enum { Q_PERIOD, Q_BIN_S, Q_ALPHA, Q_WEIGHT, Q_GATE, Q_TAIL_BETA, Q_MAX_NORM, Q_COUNT };
enum { RAISED = 1, CLEARED = -1, NONE = 0 }; /* edge.alerts */

static int check(PyObject *o, const char *name, int type, int ndim, npy_intp rows, npy_intp cols) {
    /* o must be a C-contiguous, aligned, writeable array of `type` with `ndim` dimensions, `rows`
       rows (-1: any) and `cols` entries in its last dimension (-1: any). */
    if (!PyArray_Check(o)) {
        PyErr_Format(PyExc_TypeError, "row_step: %s must be a numpy array", name);
        return 0;
    }
    PyArrayObject *a = (PyArrayObject *)o;
    if (PyArray_TYPE(a) != type || PyArray_NDIM(a) != ndim || !PyArray_IS_C_CONTIGUOUS(a) ||
        !PyArray_ISALIGNED(a) || !PyArray_ISWRITEABLE(a) || (rows >= 0 && PyArray_DIM(a, 0) != rows) ||
        (cols >= 0 && PyArray_DIM(a, ndim - 1) != cols)) {
        PyErr_Format(PyExc_ValueError, "row_step: %s has the wrong dtype, shape or layout", name);
        return 0;
    }
    return 1;
}

#define DATA(type, o) ((type *)PyArray_DATA((PyArrayObject *)(o)))

typedef struct { /* the detector's constants; the daily profile's (seasonal.DailyProfile) prefixed q */
    npy_intp d, k, qk;
    const float *mean, *std;
    const double *center, *scale, *kd, *kp, *p;
    const double *qspread, *qcenter, *qscale, *qkd, *qkp, *q;
} Consts;

typedef struct { /* the streams' state arrays (the engine's slots, or a DetectorState), `rows` streams */
    npy_intp rows;
    float *forecast, *extent;
    npy_int64 *seen;
    double *adapt;
    npy_bool *active;
    npy_int32 *above, *below, *cooldown;
    npy_intp bins;   /* the daily profile's bins; 0: no profile */
    double *season;  /* float64[rows, 3] */
    float *profile;  /* float32[rows, bins, d] */
} State;

/* args: norm, standard, knots, params, forecast, seen, adapt, active, above, below, cooldown, extent */
static int parse(PyObject *const *a, npy_intp d, Consts *k, State *s) {
    if (!check(a[2], "knots", NPY_FLOAT64, 2, 2, -1) || !check(a[5], "seen", NPY_INT64, 1, -1, -1)) return 0;
    npy_intp r = PyArray_DIM((PyArrayObject *)a[5], 0);
    k->d = d;
    k->k = PyArray_DIM((PyArrayObject *)a[2], 1);
    if (k->k < 2) {
        PyErr_SetString(PyExc_ValueError, "row_step: knots must be float64[2, K >= 2]");
        return 0;
    }
    if (!check(a[0], "norm", NPY_FLOAT32, 2, 2, d) || !check(a[1], "standard", NPY_FLOAT64, 2, 2, d) ||
        !check(a[3], "params", NPY_FLOAT64, 1, -1, P_COUNT) || !check(a[4], "forecast", NPY_FLOAT32, 2, r, d) ||
        !check(a[6], "adapt", NPY_FLOAT64, 2, r, 6) || !check(a[7], "active", NPY_BOOL, 1, r, -1) ||
        !check(a[8], "above", NPY_INT32, 1, r, -1) || !check(a[9], "below", NPY_INT32, 1, r, -1) ||
        !check(a[10], "cooldown", NPY_INT32, 1, r, -1) || !check(a[11], "extent", NPY_FLOAT32, 3, r, d) ||
        PyArray_DIM((PyArrayObject *)a[11], 1) != 2) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "row_step: extent must be float32[B, 2, D]");
        return 0;
    }
    k->mean = DATA(float, a[0]);
    k->std = k->mean + d;
    k->center = DATA(double, a[1]);
    k->scale = k->center + d;
    k->kd = DATA(double, a[2]);
    k->kp = k->kd + k->k;
    k->p = DATA(double, a[3]);
    s->rows = r;
    s->forecast = DATA(float, a[4]);
    s->seen = DATA(npy_int64, a[5]);
    s->adapt = DATA(double, a[6]);
    s->active = DATA(npy_bool, a[7]);
    s->above = DATA(npy_int32, a[8]);
    s->below = DATA(npy_int32, a[9]);
    s->cooldown = DATA(npy_int32, a[10]);
    s->extent = DATA(float, a[11]);
    return 1;
}

/* args: spreads float64[3, D] (spread, center, scale), knots float64[2, K], params, season, profile */
static int parse_profile(PyObject *const *a, Consts *k, State *s) {
    npy_intp d = k->d, r = s->rows;
    if (!check(a[1], "profile knots", NPY_FLOAT64, 2, 2, -1) || !check(a[0], "profile spreads", NPY_FLOAT64, 2, 3, d) ||
        !check(a[2], "profile params", NPY_FLOAT64, 1, -1, Q_COUNT) || !check(a[3], "season", NPY_FLOAT64, 2, r, 3) ||
        !check(a[4], "profile", NPY_FLOAT32, 3, r, d))
        return 0;
    k->qk = PyArray_DIM((PyArrayObject *)a[1], 1);
    if (k->qk < 2) {
        PyErr_SetString(PyExc_ValueError, "row_step: profile knots must be float64[2, K >= 2]");
        return 0;
    }
    k->qspread = DATA(double, a[0]);
    k->qcenter = k->qspread + d;
    k->qscale = k->qcenter + d;
    k->qkd = DATA(double, a[1]);
    k->qkp = k->qkd + k->qk;
    k->q = DATA(double, a[2]);
    s->season = DATA(double, a[3]);
    s->bins = PyArray_DIM((PyArrayObject *)a[4], 1);
    s->profile = DATA(float, a[4]);
    return 1;
}

/* The calibrated score F(dist) (Scorer.score_one) */
static double score_of(double dist, const double *kd, const double *kp, npy_intp nk, double beta) {
    if (dist > kd[nk - 1]) return 1.0 - (1.0 - kp[nk - 1]) * exp(-(dist - kd[nk - 1]) / beta);
    npy_intp a = 0, b = nk; /* bisect_right: the first index with kd[index] > dist */
    while (a < b) {
        npy_intp m = (a + b) / 2;
        if (dist < kd[m]) b = m; else a = m + 1;
    }
    npy_intp j = a - 1;
    if (j < 0) return kp[0];
    if (j == nk - 1 || kd[j] == dist) return kp[j];
    return (kp[j + 1] - kp[j]) / (kd[j + 1] - kd[j]) * (dist - kd[j]) + kp[j];
}

/* log(1 - F(dist)), exact in the tail (Scorer.log_survival_one) */
static double log_survival(double dist, double score, const double *kd, const double *kp, npy_intp nk,
                           double beta) {
    double kd_tail = kd[nk - 1], kp_tail = kp[nk - 1];
    return dist > kd_tail ? log1p(-kp_tail) - (dist - kd_tail) / beta : log1p(-(score < kp_tail ? score : kp_tail));
}

/* Running statistics st = (mean, variance, count): r's z against them (0 while fewer than the
   adaptive warm-up), then r learned, in place (Adaptive.standardise_one) */
static double standardise(double *st, double r, const double *p) {
    double m = st[0], v = st[1], n = st[2], dev = r - m, z = 0.0;
    if (n >= p[P_ADAPTIVE_WARMUP]) {
        double sd = sqrt(v);
        if (!(sd >= p[P_MIN_STD])) sd = p[P_MIN_STD];
        z = dev / sd;
        if (p[P_CLIP] != 0.0) {
            double lim = p[P_CLIP] * sd;
            dev = dev > -lim ? dev : -lim;
            dev = dev < lim ? dev : lim;
        }
    }
    double a1 = 1.0 / p[P_HORIZON], a2 = 1.0 / (n + 1.0), a = a1 >= a2 ? a1 : a2;
    st[0] = m + a * dev;
    st[1] = (1.0 - a) * (v + a * dev * dev);
    st[2] = n + 1.0;
    return z;
}

static int in_range(npy_intp i, const State *s) {
    if (i >= 0 && i < s->rows) return 1;
    PyErr_Format(PyExc_IndexError, "row_step: stream %zd is out of range for %zd streams", (Py_ssize_t)i,
                 (Py_ssize_t)s->rows);
    return 0;
}

/* Stream i's step: raw values x[D] -> z[D] normalised, z2[D] squared standardised residuals,
   res = (score, distance, adaptive, first); updates its state and returns the alert event. context:
   the sample closed a block on a level new for its shape (context.ContextNovelty, run before). */
static int step(const Consts *k, const State *s, npy_intp i, const float *x, double t, float *z, double *z2,
                double *res, int context) {
    npy_intp d = k->d, nk = k->k;
    const double *p = k->p, *kd = k->kd, *kp = k->kp;
    float *forecast = s->forecast + i * d, *lo = s->extent + i * 2 * d, *hi = lo + d;
    double *adapt = s->adapt + i * 6;
    npy_bool *active = s->active + i;
    npy_int32 *above = s->above + i, *below = s->below + i, *cooldown = s->cooldown + i;

    /* normalise, residual, distance (Normalizer.normalize, Scorer.distance_one) */
    double total = 0.0, top = 0.0;
    for (npy_intp c = 0; c < d; c++) {
        float zc = (x[c] - k->mean[c]) / k->std[c];
        z[c] = zc;
        double e = (double)(zc - forecast[c]);
        double u = (e - k->center[c]) / k->scale[c];
        z2[c] = u * u;
        total = c == 0 ? z2[0] : total + z2[c];
        if (c == 0 || z2[c] > top) top = z2[c];
    }
    double dist = p[P_MAX_NORM] != 0.0 ? sqrt(top) : sqrt(total / (double)d);

    /* calibrated score (Scorer.score_one) */
    int live = (double)s->seen[i] > p[P_WARMUP];
    double score = live ? score_of(dist, kd, kp, nk, p[P_TAIL_BETA]) : 0.0;

    /* the value range and novelty (Detector.step_row) */
    int novel = context, outside = 0;
    for (npy_intp c = 0; c < d; c++)
        if (x[c] < lo[c] || x[c] > hi[c]) outside = 1;
    if (outside) {
        for (npy_intp c = 0; c < d; c++) {
            double l = lo[c], h = hi[c], v = x[c];
            double g = isfinite(h - l) ? p[P_NOVELTY_MARGIN] * (h - l) : 0.0;
            if (v < l - g || v > h + g) novel = 1;
        }
        for (npy_intp c = 0; c < d; c++) {
            if (x[c] < lo[c]) lo[c] = x[c];
            if (x[c] > hi[c]) hi[c] = x[c];
        }
    }

    /* the daily profile's z, weighted (DailyProfile.score_one); row: the bin, when it had a value */
    const double *q = k->q;
    double extra = 0.0;
    float *row = NULL;
    if (s->bins > 0) {
        double ph = fmod(t, q[Q_PERIOD]); /* Python's t % period */
        if (ph < 0.0) ph += q[Q_PERIOD];
        npy_intp bin = (npy_intp)nearbyint(ph / q[Q_BIN_S]) % s->bins;
        row = s->profile + (i * s->bins + bin) * d;
        if (isnan(row[0])) { /* first visit: the bin starts at this sample */
            for (npy_intp c = 0; c < d; c++) row[c] = x[c];
            row = NULL;
        } else if (live) {
            double qtotal = 0.0, qtop = 0.0;
            for (npy_intp c = 0; c < d; c++) {
                double e = ((double)x[c] - (double)row[c]) / k->qspread[c];
                double u = (e - k->qcenter[c]) / k->qscale[c];
                qtotal = c == 0 ? u * u : qtotal + u * u;
                if (c == 0 || u * u > qtop) qtop = u * u;
            }
            double qd = q[Q_MAX_NORM] != 0.0 ? sqrt(qtop) : sqrt(qtotal / (double)d);
            double qs = score_of(qd, k->qkd, k->qkp, k->qk, q[Q_TAIL_BETA]);
            double rr = log_survival(qd, qs, k->qkd, k->qkp, k->qk, q[Q_TAIL_BETA]) * p[P_NEG_INV_LN10];
            if (rr > p[P_CAP]) rr = p[P_CAP];
            double zz = standardise(s->season + i * 3, rr, p);
            extra = q[Q_WEIGHT] * (zz >= 0.0 ? zz : 0.0);
        }
    }

    /* the adaptive score (Adaptive.advance_one) */
    double adaptive = 0.0, first = 0.0, own = 0.0;
    if (live) {
        double surprise = log_survival(dist, score, kd, kp, nk, p[P_TAIL_BETA]);
        double n = adapt[2], peak = adapt[3], last = adapt[4];
        double rr = surprise * p[P_NEG_INV_LN10];
        if (rr > p[P_CAP]) rr = p[P_CAP];
        double zz = standardise(adapt, rr, p);
        if (zz < 0.0) zz = 0.0;
        own = zz;
        if (extra > zz) zz = extra;
        double load = adapt[5] * p[P_FATIGUE_DECAY];
        double damped = zz / (1.0 + p[P_FATIGUE] * load);
        adaptive = damped / (damped + p[P_SQUASH]);
        if (novel && p[P_NOVELTY] != 0.0) {
            if (n - last > p[P_NOVELTY_REFRACTORY] && zz >= p[P_NOVELTY_Z] && p[P_NOVELTY] > adaptive)
                adaptive = p[P_NOVELTY];
            last = n;
        }
        first = adaptive > peak ? adaptive : 0.01 * adaptive;
        if (adaptive > peak && zz >= p[P_FATIGUE_Z]) load += 1.0;
        double decayed = peak > 0 ? peak * p[P_DECAY] : peak;
        adapt[3] = decayed >= adaptive ? decayed : adaptive;
        adapt[4] = last;
        adapt[5] = load;
    }

    /* the profile's bin learns a sample the forecaster finds normal (DailyProfile.learn_one) */
    if (row && own < q[Q_GATE] && !novel)
        for (npy_intp c = 0; c < d; c++) row[c] = (float)((double)row[c] + q[Q_ALPHA] * ((double)x[c] - (double)row[c]));

    /* the alert machine (alerts.alert_step_one) */
    double watched = p[P_ON_ADAPTIVE] != 0.0 ? adaptive : score;
    int hot = watched >= p[P_THRESHOLD], event = NONE;
    if (!hot && !*active) {
        if (*above || *below || *cooldown) {
            *above = *below = 0;
            *cooldown = *cooldown > 1 ? *cooldown - 1 : 0;
        }
    } else if (*active) {
        *below = watched < p[P_CLEAR_THRESHOLD] ? *below + 1 : 0;
        *above = 0;
        if (*below >= p[P_CLEAR_AFTER]) {
            *active = 0;
            *below = 0;
            *cooldown = (npy_int32)p[P_COOLDOWN];
            event = CLEARED;
        }
    } else {
        *above = hot ? *above + 1 : 0;
        *below = 0;
        *cooldown = *cooldown > 1 ? *cooldown - 1 : 0;
        if (*above >= p[P_RAISE_AFTER] && *cooldown == 0) {
            *active = 1;
            *above = 0;
            event = RAISED;
        }
    }
    s->seen[i] += 1;
    res[0] = score;
    res[1] = dist;
    res[2] = adaptive;
    res[3] = first;
    return event;
}

/* row_step(i, x, norm, standard, knots, params, forecast, seen, adapt, active, above, below,
            cooldown, extent, z_out, z2_out, t, profile_spreads, profile_knots, profile_params, season,
            profile, context) -> (event, score, distance, adaptive, first)
   x float32[D]; z_out float32[1, D]: the normalised sample; z2_out float64[D]; t its timestamp;
   context: true where the sample is new for its context */
static PyObject *row_step(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 23) {
        PyErr_SetString(PyExc_TypeError, "row_step takes 23 arguments");
        return NULL;
    }
    Py_ssize_t i = PyLong_AsSsize_t(args[0]);
    if (i == -1 && PyErr_Occurred()) return NULL;
    if (!PyArray_Check(args[1]) || PyArray_NDIM((PyArrayObject *)args[1]) != 1 ||
        PyArray_DIM((PyArrayObject *)args[1], 0) < 1) {
        PyErr_SetString(PyExc_ValueError, "row_step: x must be float32[D]");
        return NULL;
    }
    npy_intp d = PyArray_DIM((PyArrayObject *)args[1], 0);
    Consts k;
    State s;
    if (!check(args[1], "x", NPY_FLOAT32, 1, d, d) || !parse(args + 2, d, &k, &s) || !in_range(i, &s) ||
        !check(args[14], "z_out", NPY_FLOAT32, 2, 1, d) || !check(args[15], "z2_out", NPY_FLOAT64, 1, d, d) ||
        !parse_profile(args + 17, &k, &s))
        return NULL;
    double t = PyFloat_AsDouble(args[16]);
    if (t == -1.0 && PyErr_Occurred()) return NULL;
    int context = PyObject_IsTrue(args[22]);
    if (context < 0) return NULL;
    double res[4];
    int event = step(&k, &s, i, DATA(float, args[1]), t, DATA(float, args[14]), DATA(double, args[15]), res,
                     context);
    return Py_BuildValue("(idddd)", event, res[0], res[1], res[2], res[3]);
}

/* rows_step(idx, x, norm, ..., extent, z_out, z2_out, res_out, events_out, ts, profile_spreads,
             profile_knots, profile_params, season, profile, context) -> None
   The streams in slots idx int64[B] (distinct), one sample each, x float32[B, D], ts float64[B], in order: row b of
   z_out float32[B, D], z2_out float64[B, D], res_out float64[B, 4] and events_out int8[B] is
   row_step's output for stream idx[b]; context bool[B] its argument. */
static PyObject *rows_step(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 25) {
        PyErr_SetString(PyExc_TypeError, "rows_step takes 25 arguments");
        return NULL;
    }
    if (!check(args[0], "idx", NPY_INT64, 1, -1, -1) || !PyArray_Check(args[1]) ||
        PyArray_NDIM((PyArrayObject *)args[1]) != 2) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "rows_step: x must be float32[B, D]");
        return NULL;
    }
    npy_intp b = PyArray_DIM((PyArrayObject *)args[0], 0), d = PyArray_DIM((PyArrayObject *)args[1], 1);
    Consts k;
    State s;
    if (d < 1 || !check(args[1], "x", NPY_FLOAT32, 2, b, d) || !parse(args + 2, d, &k, &s) ||
        !check(args[14], "z_out", NPY_FLOAT32, 2, b, d) || !check(args[15], "z2_out", NPY_FLOAT64, 2, b, d) ||
        !check(args[16], "res_out", NPY_FLOAT64, 2, b, 4) || !check(args[17], "events_out", NPY_INT8, 1, b, -1) ||
        !check(args[18], "ts", NPY_FLOAT64, 1, b, -1) || !parse_profile(args + 19, &k, &s) ||
        !check(args[24], "context", NPY_BOOL, 1, b, -1)) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "rows_step: x must hold at least one value");
        return NULL;
    }
    const npy_int64 *idx = DATA(npy_int64, args[0]);
    for (npy_intp j = 0; j < b; j++)
        if (!in_range(idx[j], &s)) return NULL;
    const float *x = DATA(float, args[1]);
    float *z = DATA(float, args[14]);
    double *z2 = DATA(double, args[15]), *res = DATA(double, args[16]);
    npy_int8 *events = DATA(npy_int8, args[17]);
    const double *ts = DATA(double, args[18]);
    const npy_bool *context = DATA(npy_bool, args[24]);
    for (npy_intp j = 0; j < b; j++)
        events[j] = (npy_int8)step(&k, &s, idx[j], x + j * d, ts[j], z + j * d, z2 + j * d, res + j * 4,
                                   context[j]);
    Py_RETURN_NONE;
}

/* context_add(i, x, head, block) -> int: stream i's raw values x float32[D] into its open blocks of
   contextual novelty (context.ContextNovelty.observe_one's accumulation: count, sum, max, min per
   channel in head float64[B, D, H]); returns how many channels' blocks are now full, for the caller
   to close (the nearest-neighbour search over the memory runs in numpy, once a block). */
static PyObject *context_add(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "context_add takes 4 arguments");
        return NULL;
    }
    Py_ssize_t i = PyLong_AsSsize_t(args[0]);
    if (i == -1 && PyErr_Occurred()) return NULL;
    double block = PyFloat_AsDouble(args[3]);
    if (block == -1.0 && PyErr_Occurred()) return NULL;
    if (!PyArray_Check(args[1]) || !PyArray_Check(args[2]) || PyArray_NDIM((PyArrayObject *)args[2]) != 3) {
        PyErr_SetString(PyExc_ValueError, "context_add: x must be float32[D] and head float64[B, D, H]");
        return NULL;
    }
    PyArrayObject *h = (PyArrayObject *)args[2];
    npy_intp rows = PyArray_DIM(h, 0), d = PyArray_DIM(h, 1), w = PyArray_DIM(h, 2);
    if (!check(args[1], "x", NPY_FLOAT32, 1, d, d) || !check(args[2], "head", NPY_FLOAT64, 3, rows, w)) return NULL;
    if (i < 0 || i >= rows || w < 4) {
        PyErr_Format(PyExc_IndexError, "context_add: stream %zd is out of range for %zd streams", (Py_ssize_t)i,
                     (Py_ssize_t)rows);
        return NULL;
    }
    const float *x = DATA(float, args[1]);
    double *row = DATA(double, args[2]) + i * d * w;
    long full = 0;
    for (npy_intp c = 0; c < d; c++, row += w) {
        double v = x[c];
        if (row[0] == 0.0) row[2] = row[3] = v;
        else {
            if (v > row[2]) row[2] = v;
            if (v < row[3]) row[3] = v;
        }
        row[0] += 1.0;
        row[1] += v;
        if (row[0] >= block) full++;
    }
    return PyLong_FromLong(full);
}

static PyMethodDef methods[] = {
    {"context_add", (PyCFunction)(void (*)(void))context_add, METH_FASTCALL,
     "context_add(i, x, head, block) -> int: one stream's samples into its open blocks of contextual novelty "
     "(see edge/_rowstep.c)."},
    {"rows_step", (PyCFunction)(void (*)(void))rows_step, METH_FASTCALL,
     "rows_step(idx, x, norm, standard, knots, params, forecast, seen, adapt, active, above, below, cooldown, "
     "extent, z_out, z2_out, res_out, events_out, ts, profile_spreads, profile_knots, profile_params, season, "
     "profile, context): row_step for several streams (see edge/_rowstep.c)."},
    {"row_step", (PyCFunction)(void (*)(void))row_step, METH_FASTCALL,
     "row_step(i, x, norm, standard, knots, params, forecast, seen, adapt, active, above, below, cooldown, "
     "extent, z_out, z2_out, t, profile_spreads, profile_knots, profile_params, season, profile, context) -> "
     "(event, score, distance, adaptive, first): one stream's scoring step "
     "(see edge/_rowstep.c)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "edge._rowstep", NULL, -1, methods};

PyMODINIT_FUNC PyInit__rowstep(void) {
    import_array();
    return PyModule_Create(&module);
}
