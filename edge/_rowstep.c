/* One stream's scoring step in C: `Detector.step_row` without the model step.
 *
 * The arithmetic of edge/detector.py's Python floats path, operation for operation: float32
 * normalisation and residual, float64 distance with the channels summed in order, the calibrated
 * score (np.interp's rule, exponential tail), the value range, the adaptive score (scoring.Adaptive)
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
       P_CLEAR_AFTER, P_COOLDOWN, P_ON_ADAPTIVE, P_NEG_INV_LN10, P_COUNT };
enum { RAISED = 1, CLEARED = -1, NONE = 0 }; /* edge.alerts */

static int check(PyObject *o, const char *name, int type, int ndim, npy_intp rows, npy_intp cols) {
    /* o must be a C-contiguous, aligned, writeable array of `type` with `ndim` dimensions, at least
       `rows` rows (-1: any) and `cols` columns in its last dimension (-1: any). */
    if (!PyArray_Check(o)) {
        PyErr_Format(PyExc_TypeError, "row_step: %s must be a numpy array", name);
        return 0;
    }
    PyArrayObject *a = (PyArrayObject *)o;
    if (PyArray_TYPE(a) != type || PyArray_NDIM(a) != ndim || !PyArray_IS_C_CONTIGUOUS(a) ||
        !PyArray_ISALIGNED(a) || !PyArray_ISWRITEABLE(a) || (cols >= 0 && PyArray_DIM(a, ndim - 1) != cols)) {
        PyErr_Format(PyExc_ValueError, "row_step: %s has the wrong dtype, shape or layout", name);
        return 0;
    }
    if (rows >= 0 && PyArray_DIM(a, 0) < rows) {
        PyErr_Format(PyExc_IndexError, "row_step: stream %zd is out of range for %s's %zd rows", (Py_ssize_t)rows - 1,
                     name, (Py_ssize_t)PyArray_DIM(a, 0));
        return 0;
    }
    return 1;
}

#define F32(o) ((float *)PyArray_DATA((PyArrayObject *)(o)))
#define F64(o) ((double *)PyArray_DATA((PyArrayObject *)(o)))

/* row_step(i, x, norm, standard, knots, params, forecast, seen, adapt, active, above, below,
            cooldown, extent, z_out, z2_out) -> (event, score, distance, adaptive, first)
   z_out float32[1, D]: the normalised sample; z2_out float64[D]: the squared standardised residuals */
static PyObject *row_step(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 16) {
        PyErr_SetString(PyExc_TypeError, "row_step takes 16 arguments");
        return NULL;
    }
    Py_ssize_t i = PyLong_AsSsize_t(args[0]);
    if (i == -1 && PyErr_Occurred()) return NULL;
    PyObject *x_ = args[1], *norm_ = args[2], *standard_ = args[3], *knots_ = args[4], *p_ = args[5];
    PyObject *forecast_ = args[6], *seen_ = args[7], *adapt_ = args[8], *active_ = args[9];
    PyObject *above_ = args[10], *below_ = args[11], *cooldown_ = args[12], *extent_ = args[13];
    PyObject *z_ = args[14], *out_ = args[15];
    if (!PyArray_Check(x_) || PyArray_NDIM((PyArrayObject *)x_) != 1) {
        PyErr_SetString(PyExc_ValueError, "row_step: x must be float32[D]");
        return NULL;
    }
    npy_intp d = PyArray_DIM((PyArrayObject *)x_, 0), r = i + 1;
    if (i < 0) {
        PyErr_SetString(PyExc_IndexError, "row_step: negative stream index");
        return NULL;
    }
    if (d < 1 || !check(x_, "x", NPY_FLOAT32, 1, -1, d) || !check(norm_, "norm", NPY_FLOAT32, 2, 2, d) ||
        !check(standard_, "standard", NPY_FLOAT64, 2, 2, d) || !check(knots_, "knots", NPY_FLOAT64, 2, 2, -1) ||
        !check(p_, "params", NPY_FLOAT64, 1, -1, P_COUNT) || !check(forecast_, "forecast", NPY_FLOAT32, 2, r, d) ||
        !check(seen_, "seen", NPY_INT64, 1, r, -1) || !check(adapt_, "adapt", NPY_FLOAT64, 2, r, 5) ||
        !check(active_, "active", NPY_BOOL, 1, r, -1) || !check(above_, "above", NPY_INT32, 1, r, -1) ||
        !check(below_, "below", NPY_INT32, 1, r, -1) || !check(cooldown_, "cooldown", NPY_INT32, 1, r, -1) ||
        !check(extent_, "extent", NPY_FLOAT32, 3, r, d) || !check(z_, "z_out", NPY_FLOAT32, 2, 1, d) ||
        !check(out_, "z2_out", NPY_FLOAT64, 1, -1, d)) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "row_step: x must hold at least one value");
        return NULL;
    }
    if (PyArray_DIM((PyArrayObject *)knots_, 1) < 2 || PyArray_DIM((PyArrayObject *)extent_, 1) != 2) {
        PyErr_SetString(PyExc_ValueError, "row_step: knots must be float64[2, K >= 2], extent float32[B, 2, D]");
        return NULL;
    }
    const float *x = F32(x_), *mean = F32(norm_), *std = mean + d;
    const double *center = F64(standard_), *scale = center + d, *p = F64(p_);
    npy_intp k = PyArray_DIM((PyArrayObject *)knots_, 1);
    const double *kd = F64(knots_), *kp = kd + k;
    float *forecast = F32(forecast_) + i * d, *lo = F32(extent_) + i * 2 * d, *hi = lo + d, *z = F32(z_);
    double *adapt = F64(adapt_) + i * 5, *out = F64(out_);
    npy_int64 *seen = (npy_int64 *)PyArray_DATA((PyArrayObject *)seen_) + i;
    npy_bool *active = (npy_bool *)PyArray_DATA((PyArrayObject *)active_) + i;
    npy_int32 *above = (npy_int32 *)PyArray_DATA((PyArrayObject *)above_) + i;
    npy_int32 *below = (npy_int32 *)PyArray_DATA((PyArrayObject *)below_) + i;
    npy_int32 *cooldown = (npy_int32 *)PyArray_DATA((PyArrayObject *)cooldown_) + i;

    /* normalise, residual, distance (Normalizer.normalize, Scorer.distance_one) */
    double total = 0.0;
    for (npy_intp c = 0; c < d; c++) {
        float zc = (x[c] - mean[c]) / std[c];
        z[c] = zc;
        double e = (double)(zc - forecast[c]);
        double s = (e - center[c]) / scale[c];
        out[c] = s * s;
        total = c == 0 ? out[0] : total + out[c];
    }
    double dist = sqrt(total / (double)d);

    /* calibrated score (Scorer.score_one) */
    int live = (double)*seen > p[P_WARMUP];
    double kd_tail = kd[k - 1], kp_tail = kp[k - 1], beta = p[P_TAIL_BETA], score = 0.0;
    if (live) {
        if (dist > kd_tail) {
            score = 1.0 - (1.0 - kp_tail) * exp(-(dist - kd_tail) / beta);
        } else {
            npy_intp a = 0, b = k; /* bisect_right: the first index with kd[index] > dist */
            while (a < b) {
                npy_intp m = (a + b) / 2;
                if (dist < kd[m]) b = m; else a = m + 1;
            }
            npy_intp j = a - 1;
            if (j < 0) score = kp[0];
            else if (j == k - 1 || kd[j] == dist) score = kp[j];
            else score = (kp[j + 1] - kp[j]) / (kd[j + 1] - kd[j]) * (dist - kd[j]) + kp[j];
        }
    }

    /* the value range and novelty (Detector.step_row) */
    int novel = 0, outside = 0;
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

    /* the adaptive score (Adaptive.advance_one) */
    double adaptive = 0.0, first = 0.0;
    if (live) {
        double surprise = dist > kd_tail ? log1p(-kp_tail) - (dist - kd_tail) / beta
                                         : log1p(-(score < kp_tail ? score : kp_tail));
        double m = adapt[0], v = adapt[1], n = adapt[2], peak = adapt[3], last = adapt[4];
        double rr = surprise * p[P_NEG_INV_LN10];
        if (rr > p[P_CAP]) rr = p[P_CAP];
        double dev = rr - m, zz = 0.0;
        if (n >= p[P_ADAPTIVE_WARMUP]) {
            double sd = sqrt(v);
            zz = dev / (sd >= p[P_MIN_STD] ? sd : p[P_MIN_STD]);
        }
        if (zz < 0.0) zz = 0.0;
        adaptive = zz / (zz + p[P_SQUASH]);
        if (novel && p[P_NOVELTY] != 0.0) {
            if (n - last > p[P_NOVELTY_REFRACTORY] && p[P_NOVELTY] > adaptive) adaptive = p[P_NOVELTY];
            last = n;
        }
        first = adaptive > peak ? adaptive : 0.01 * adaptive;
        double a1 = 1.0 / p[P_HORIZON], a2 = 1.0 / (n + 1.0), a = a1 >= a2 ? a1 : a2;
        double decayed = peak > 0 ? peak * p[P_DECAY] : peak;
        adapt[0] = m + a * dev;
        adapt[1] = (1.0 - a) * (v + a * dev * dev);
        adapt[2] = n + 1.0;
        adapt[3] = decayed >= adaptive ? decayed : adaptive;
        adapt[4] = last;
    }

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
    *seen += 1;
    return Py_BuildValue("(idddd)", event, score, dist, adaptive, first);
}

static PyMethodDef methods[] = {
    {"row_step", (PyCFunction)(void (*)(void))row_step, METH_FASTCALL,
     "row_step(i, x, norm, standard, knots, params, forecast, seen, adapt, active, above, below, cooldown, "
     "extent, z_out, z2_out) -> (event, score, distance, adaptive, first): one stream's scoring step "
     "(see edge/_rowstep.c)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "edge._rowstep", NULL, -1, methods};

PyMODINIT_FUNC PyInit__rowstep(void) {
    import_array();
    return PyModule_Create(&module);
}
