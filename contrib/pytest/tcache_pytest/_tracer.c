/*
 * _tracer: the C half of tcache_pytest.tracer for Pythons without
 * sys.monitoring (< 3.12).  tracer.py compiles this file at run time.
 *
 * A Collector is installed with PyEval_SetProfile.  A profile function in C
 * costs no Python call per event, and the set of code objects already seen
 * in the current interval makes the common case (a code object that ran
 * before) one pointer hash probe: the flag check and the file's verdict (a
 * dict lookup) are paid once per code object per interval, and the Python
 * function deciding a file's verdict once per file per tracer.
 *
 * Every code object in the set holds a strong reference: a set keyed by
 * address alone could mistake a new code object at a freed one's address
 * for one already seen, and miss it.  take() drops the references.
 *
 * Thread safety: every entry point runs with the GIL held and none of them
 * releases it while the table is in an inconsistent state.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <frameobject.h>

#include <stdint.h>
#include <string.h>

/* PyFrame_GetCode (a new reference) exists from 3.9; before that the
 * frame's f_code field is public. */
#if PY_VERSION_HEX < 0x03090000
static PyCodeObject *
frame_code(PyFrameObject *frame)
{
	Py_INCREF(frame->f_code);
	return frame->f_code;
}
#else
#define frame_code PyFrame_GetCode
#endif

#define MIN_CAP 256

typedef struct {
	PyObject_HEAD
	PyObject *verdicts;	/* dict: co_filename -> True if the project's */
	PyObject *classify;	/* callable(co_filename) -> bool, fills verdicts */
	PyObject **slots;	/* open addressing, NULL = empty */
	size_t cap;		/* a power of two */
	size_t used;
	PyObject *found;	/* list: project function code objects seen */
	int stopped;		/* events ignored: other threads may still call us */
	int failed;		/* an allocation failed: a code object may be missing */
	PyThreadState *installing;	/* set while we call PyEval_SetProfile */
} Collector;

static PyTypeObject Collector_Type;

/* Fibonacci hashing of the address: code objects are 16-byte aligned, so the
 * low bits carry nothing and the multiply spreads the rest. */
static size_t
slot_of(const PyObject *p, size_t cap)
{
	uint64_t h = (uint64_t)(uintptr_t)p * UINT64_C(0x9E3779B97F4A7C15);
	return (size_t)(h >> 32) & (cap - 1);
}

static int
table_grow(Collector *self)
{
	size_t ncap = self->cap * 2;
	PyObject **nslots = PyMem_Calloc(ncap, sizeof *nslots);
	if (nslots == NULL)
		return -1;
	for (size_t i = 0; i < self->cap; i++) {
		PyObject *p = self->slots[i];
		if (p == NULL)
			continue;
		size_t j = slot_of(p, ncap);
		while (nslots[j] != NULL)
			j = (j + 1) & (ncap - 1);
		nslots[j] = p;
	}
	PyMem_Free(self->slots);
	self->slots = nslots;
	self->cap = ncap;
	return 0;
}

/* Undecidable cases count as the project's: a spurious input costs a re-run,
 * a missing one a stale pass. */
static int
file_verdict(Collector *self, PyObject *filename)
{
	PyObject *v = PyDict_GetItemWithError(self->verdicts, filename);
	if (v != NULL)
		return v == Py_True;
	if (PyErr_Occurred())
		return 1;
	v = PyObject_CallFunctionObjArgs(self->classify, filename, NULL);
	if (v == NULL)
		return 1;
	int r = PyObject_IsTrue(v);
	Py_DECREF(v);
	return r != 0;
}

static int
is_project(Collector *self, PyCodeObject *code)
{
	if (!(code->co_flags & CO_OPTIMIZED))
		return 0;	/* module and class bodies are never recorded */
	/* A profile event can come while an exception is being raised or
	 * thrown into a generator: keep it out of reach of the calls below
	 * and give it back untouched. */
#if PY_VERSION_HEX >= 0x030C0000
	PyObject *exc = PyErr_GetRaisedException();
#else
	PyObject *type, *value, *tb;
	PyErr_Fetch(&type, &value, &tb);
#endif
	int r = file_verdict(self, code->co_filename);
	PyErr_Clear();
#if PY_VERSION_HEX >= 0x030C0000
	PyErr_SetRaisedException(exc);
#else
	PyErr_Restore(type, value, tb);
#endif
	return r;
}

/* Remembers code for this interval.  Never raises: a failure sets
 * self->failed, which makes the record untrustworthy, and clears the error
 * so that the traced program does not see it. */
static void
note(Collector *self, PyCodeObject *code)
{
	PyObject *p = (PyObject *)code;
	size_t i = slot_of(p, self->cap);
	for (;;) {
		PyObject *q = self->slots[i];
		if (q == p)
			return;
		if (q == NULL)
			break;
		i = (i + 1) & (self->cap - 1);
	}
	/* Only reachable after growing failed: keep an empty slot so that
	 * probing always ends. */
	if (self->used + 2 > self->cap) {
		self->failed = 1;
		return;
	}
	if (is_project(self, code) && PyList_Append(self->found, p) < 0) {
		PyErr_Clear();
		self->failed = 1;
		return;
	}
	Py_INCREF(p);
	self->slots[i] = p;
	/* At most half full, so that probes stay short.  If growing fails the
	 * table merely fills further; the check above guards the end. */
	if (++self->used * 2 > self->cap && table_grow(self) < 0)
		PyErr_Clear();
}

/* After stop(): another thread that still has our hook drops it at its next
 * event, so that it does not run in tracing mode for the rest of its life.
 * Removing the hook may drop the last reference to self: nothing touches
 * self after Py_DECREF. */
static void
leave(Collector *self)
{
	PyThreadState *ts = PyThreadState_Get();
	Py_INCREF(self);
	self->installing = ts;
	PyEval_SetProfile(NULL, NULL);
	self->installing = NULL;
	Py_DECREF(self);
}

/* PyTrace_CALL fires on a function's entry and on every resumption of a
 * generator or coroutine (including throw() and close()), which is what
 * "executed in this interval" means.  The other events add nothing. */
static int
profile(PyObject *obj, PyFrameObject *frame, int what, PyObject *arg)
{
	(void)arg;
	Collector *self = (Collector *)obj;
	if (what != PyTrace_CALL)
		return 0;
	if (self->stopped) {
		leave(self);
		return 0;
	}
	PyCodeObject *code = frame_code(frame);
	note(self, code);
	Py_DECREF(code);
	return 0;
}

static void
install(Collector *self)
{
	/* The audit hook in tracer.py asks installing() to tell our own
	 * PyEval_SetProfile from a replacement by someone else. */
	self->installing = PyThreadState_Get();
	PyEval_SetProfile(profile, (PyObject *)self);
	self->installing = NULL;
}

static PyObject *
Collector_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
	PyObject *verdicts, *classify;
	static char *kwlist[] = {"verdicts", "classify", NULL};
	if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!O:Collector", kwlist,
					 &PyDict_Type, &verdicts, &classify))
		return NULL;
	Collector *self = (Collector *)type->tp_alloc(type, 0);
	if (self == NULL)
		return NULL;
	self->slots = PyMem_Calloc(MIN_CAP, sizeof *self->slots);
	self->found = PyList_New(0);
	if (self->slots == NULL || self->found == NULL) {
		Py_DECREF(self);
		return PyErr_NoMemory();
	}
	self->cap = MIN_CAP;
	Py_INCREF(verdicts);
	self->verdicts = verdicts;
	Py_INCREF(classify);
	self->classify = classify;
	return (PyObject *)self;
}

static void
Collector_dealloc(Collector *self)
{
	if (self->slots != NULL) {
		for (size_t i = 0; i < self->cap; i++)
			Py_XDECREF(self->slots[i]);
		PyMem_Free(self->slots);
	}
	Py_XDECREF(self->found);
	Py_XDECREF(self->verdicts);
	Py_XDECREF(self->classify);
	Py_TYPE(self)->tp_free((PyObject *)self);
}

/* Called as a Python profile function: threading.setprofile(collector) makes
 * each new thread call sys.setprofile(collector), and the first event there
 * lands here.  Swap in the C function for the rest of the thread's life.
 * The same happens if a test restores a saved sys.getprofile(). */
static PyObject *
Collector_call(Collector *self, PyObject *args, PyObject *kwds)
{
	PyObject *frame, *event, *arg;
	if (!PyArg_ParseTuple(args, "OOO", &frame, &event, &arg))
		return NULL;
	(void)kwds;
	if (self->stopped) {
		leave(self);
		Py_RETURN_NONE;
	}
	if (PyFrame_Check(frame)) {
		PyCodeObject *code = frame_code((PyFrameObject *)frame);
		note(self, code);
		Py_DECREF(code);
	}
	install(self);
	Py_RETURN_NONE;
}

static PyObject *
Collector_install(Collector *self, PyObject *unused)
{
	(void)unused;
	self->stopped = 0;
	self->failed = 0;
	install(self);
	Py_RETURN_NONE;
}

/* True when this thread's profile function is ours in C. */
static PyObject *
Collector_installed(Collector *self, PyObject *unused)
{
	(void)unused;
	PyThreadState *ts = PyThreadState_Get();
	return PyBool_FromLong(ts->c_profilefunc == profile &&
			       ts->c_profileobj == (PyObject *)self);
}

/* True while this thread is inside our own PyEval_SetProfile. */
static PyObject *
Collector_installing(Collector *self, PyObject *unused)
{
	(void)unused;
	return PyBool_FromLong(self->installing != NULL &&
			       self->installing == PyThreadState_Get());
}

static PyObject *
Collector_uninstall(Collector *self, PyObject *unused)
{
	(void)unused;
	self->stopped = 1;
	PyThreadState *ts = PyThreadState_Get();
	if (ts->c_profilefunc == profile && ts->c_profileobj == (PyObject *)self) {
		self->installing = ts;
		PyEval_SetProfile(NULL, NULL);
		self->installing = NULL;
	}
	Py_RETURN_NONE;
}

static PyObject *
Collector_note(Collector *self, PyObject *code)
{
	if (!PyCode_Check(code)) {
		PyErr_SetString(PyExc_TypeError, "note() takes a code object");
		return NULL;
	}
	note(self, (PyCodeObject *)code);
	Py_RETURN_NONE;
}

/* Returns the project code objects seen since the last take() and starts a
 * new interval.  The old table is detached before its references are
 * dropped: freeing a code object can run Python code (weakref callbacks),
 * which re-enters profile() and must find a consistent, empty table. */
static PyObject *
Collector_take(Collector *self, PyObject *unused)
{
	(void)unused;
	PyObject *found = PyList_New(0);
	if (found == NULL)
		return NULL;
	size_t ncap = MIN_CAP;
	/* Keep the table near the size an interval needs: a huge one left by
	 * one big test would otherwise be cleared every time. */
	while (ncap < self->used * 4 && ncap < ((size_t)1 << 30))
		ncap *= 2;
	PyObject **nslots = PyMem_Calloc(ncap, sizeof *nslots);
	if (nslots == NULL) {
		Py_DECREF(found);
		return PyErr_NoMemory();
	}
	PyObject **old = self->slots;
	size_t oldcap = self->cap;
	PyObject *result = self->found;
	self->slots = nslots;
	self->cap = ncap;
	self->used = 0;
	self->found = found;
	for (size_t i = 0; i < oldcap; i++)
		Py_XDECREF(old[i]);
	PyMem_Free(old);
	return result;
}

/* Whether a code object may be missing since install(): an allocation
 * failed. */
static PyObject *
Collector_failed(Collector *self, PyObject *unused)
{
	(void)unused;
	return PyBool_FromLong(self->failed);
}

static PyMethodDef Collector_methods[] = {
	{"install", (PyCFunction)Collector_install, METH_NOARGS,
	 "Make the C profile function this thread's profile hook."},
	{"installed", (PyCFunction)Collector_installed, METH_NOARGS,
	 "Whether this thread's profile hook is ours."},
	{"installing", (PyCFunction)Collector_installing, METH_NOARGS,
	 "Whether this thread is inside our own PyEval_SetProfile."},
	{"uninstall", (PyCFunction)Collector_uninstall, METH_NOARGS,
	 "Stop recording; remove our hook from this thread if it is there."},
	{"note", (PyCFunction)Collector_note, METH_O,
	 "Record a code object as executed."},
	{"take", (PyCFunction)Collector_take, METH_NOARGS,
	 "Project code objects seen since the last take(); start anew."},
	{"failed", (PyCFunction)Collector_failed, METH_NOARGS,
	 "Whether an allocation failed since install()."},
	{NULL, NULL, 0, NULL},
};

static PyTypeObject Collector_Type = {
	PyVarObject_HEAD_INIT(NULL, 0)
	.tp_name = "_tracer.Collector",
	.tp_basicsize = sizeof(Collector),
	.tp_dealloc = (destructor)Collector_dealloc,
	.tp_call = (ternaryfunc)Collector_call,
	.tp_flags = Py_TPFLAGS_DEFAULT,
	.tp_doc = "Records which code objects run, through a C profile function.",
	.tp_methods = Collector_methods,
	.tp_new = Collector_new,
};

static struct PyModuleDef tracer_module = {
	PyModuleDef_HEAD_INIT,
	.m_name = "_tracer",
	.m_doc = "C profile function for tcache_pytest.tracer.",
	.m_size = -1,
};

PyMODINIT_FUNC PyInit__tracer(void);

PyMODINIT_FUNC
PyInit__tracer(void)
{
	if (PyType_Ready(&Collector_Type) < 0)
		return NULL;
	PyObject *m = PyModule_Create(&tracer_module);
	if (m == NULL)
		return NULL;
	Py_INCREF(&Collector_Type);
	if (PyModule_AddObject(m, "Collector", (PyObject *)&Collector_Type) < 0) {
		Py_DECREF(&Collector_Type);
		Py_DECREF(m);
		return NULL;
	}
	return m;
}
