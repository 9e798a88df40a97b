// Python face of the native module. Arrays are used in place (no copies):
// inputs of the wrong dtype, layout or size are rejected with a clear error.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>

#include "act_quant.h"
#include "cpu.h"
#include "formats.h"
#include "matmul.h"
#include "membw.h"
#include "thread_pool.h"

namespace py = pybind11;
using namespace ryz;

namespace {

Isa parse_isa(const std::string& name) {
    if (name == "auto") return resolve_auto_isa();
    const Isa isa = isa_from_name(name);
    if (static_cast<int>(isa) > static_cast<int>(detected_isa()))
        throw std::runtime_error(std::string("the ") + name + " path was requested but this CPU supports at most " +
                                 isa_name(detected_isa()));
    return isa;
}

// A C-contiguous, aligned numpy array of exactly dtype T, else TypeError/ValueError.
template <class T>
py::array_t<T> strict_array(const py::handle& obj, const char* what, int ndim_min, int ndim_max) {
    if (!py::isinstance<py::array>(obj))
        throw py::type_error(std::string(what) + ": expected a numpy array, got " +
                             std::string(py::str(py::type::of(obj).attr("__name__"))));
    auto arr = py::reinterpret_borrow<py::array>(obj);
    if (!arr.dtype().is(py::dtype::of<T>()))
        throw py::type_error(std::string(what) + ": expected dtype " + std::string(py::str(py::dtype::of<T>())) +
                             ", got " + std::string(py::str(arr.dtype())));
    if (arr.ndim() < ndim_min || arr.ndim() > ndim_max)
        throw py::value_error(std::string(what) + ": expected " + std::to_string(ndim_min) +
                              (ndim_min == ndim_max ? "" : "-" + std::to_string(ndim_max)) + " dimensions, got " +
                              std::to_string(arr.ndim()));
    if (!(arr.flags() & py::array::c_style))
        throw py::value_error(std::string(what) + ": array must be C-contiguous (use numpy.ascontiguousarray)");
    if (reinterpret_cast<uintptr_t>(arr.data()) % alignof(T) != 0)
        throw py::value_error(std::string(what) + ": array data is misaligned for " +
                              std::string(py::str(py::dtype::of<T>())));
    return py::reinterpret_borrow<py::array_t<T>>(arr);
}

// A packed tensor kept alive by the buffer it lives in (numpy array, bytes, mmap, ...).
struct PyTernaryMatrix {
    std::unique_ptr<py::buffer_info> buf;  // holds the exporter's buffer (an mmap cannot close under us)
    py::object owner;
    std::unique_ptr<TernaryMatrix> m;
};

std::unique_ptr<PyTernaryMatrix> make_matrix(const std::string& fmt, const py::buffer& data, int64_t rows,
                                             int64_t cols) {
    auto out = std::make_unique<PyTernaryMatrix>();
    out->buf = std::make_unique<py::buffer_info>(data.request(false));
    const py::buffer_info& b = *out->buf;
    if (b.itemsize != 1) throw py::type_error("packed data must be a byte buffer (uint8), got itemsize " +
                                              std::to_string(b.itemsize));
    if (b.ndim != 1) throw py::value_error("packed data must be one-dimensional");
    if (b.strides[0] != 1) throw py::value_error("packed data must be contiguous");
    out->owner = data;
    out->m = std::make_unique<TernaryMatrix>(format_from_name(fmt), static_cast<const uint8_t*>(b.ptr),
                                             static_cast<int64_t>(b.size), rows, cols);
    return out;
}

}  // namespace

PYBIND11_MODULE(_native, mod) {
    mod.doc() = "Ryzanstein native ternary kernels";

    py::register_exception_translator([](std::exception_ptr p) {
        try {
            if (p) std::rethrow_exception(p);
        } catch (const std::invalid_argument& e) {
            PyErr_SetString(PyExc_ValueError, e.what());
        }
    });

    mod.def("cpu_info", [] {
        const CpuFeatures& f = cpu_features();
        py::dict features;
        features["avx2"] = f.avx2; features["fma"] = f.fma; features["f16c"] = f.f16c;
        features["avx512f"] = f.avx512f; features["avx512bw"] = f.avx512bw; features["avx512vl"] = f.avx512vl;
        features["avx512dq"] = f.avx512dq; features["avx512vnni"] = f.avx512vnni;
        features["os_ymm"] = f.os_ymm; features["os_zmm"] = f.os_zmm;
        py::dict checks;
        for (Isa i : {Isa::Scalar, Isa::Avx2, Isa::Avx512}) checks[isa_name(i)] = self_check_status(i);
        py::dict d;
        d["features"] = features;
        d["detected"] = isa_name(detected_isa());
        d["active"] = isa_name(active_isa());
        d["auto"] = isa_name(resolve_auto_isa());
        d["self_check"] = checks;
        d["threads"] = ThreadPool::instance().size();
        return d;
    }, "CPU features, dispatch levels and the SIMD self-check results.");
    mod.def("available_isas", [] {
        std::vector<std::string> out;
        for (int i = 0; i <= static_cast<int>(detected_isa()); ++i) out.emplace_back(isa_name(static_cast<Isa>(i)));
        return out;
    }, "ISA levels this CPU can run, lowest first.");
    mod.def("set_isa_cap", [](const std::string& name) { set_isa_cap(isa_from_name(name)); }, py::arg("isa"),
            "Caps automatic dispatch at this level (also settable with RYZ_MAX_ISA).");
    mod.def("set_num_threads", [](int n) {
        if (n < 1) throw py::value_error("thread count must be >= 1");
        ThreadPool::instance().resize(n);
    }, py::arg("n"));
    mod.def("num_threads", [] { return ThreadPool::instance().size(); });

    mod.def("packed_nbytes", [](const std::string& fmt, int64_t rows, int64_t cols) {
        const Format f = format_from_name(fmt);
        check_shape(f, rows, cols);
        return packed_bytes(f, rows, cols);
    }, py::arg("fmt"), py::arg("rows"), py::arg("cols"));
    mod.def("scale_count", [](const std::string& fmt, int64_t rows, int64_t cols) {
        const Format f = format_from_name(fmt);
        check_shape(f, rows, cols);
        return scale_count(f, rows, cols);
    }, py::arg("fmt"), py::arg("rows"), py::arg("cols"));

    mod.def("pack", [](const std::string& fmt, const py::handle& w_obj, const py::handle& s_obj) {
        const Format f = format_from_name(fmt);
        auto w = strict_array<int8_t>(w_obj, "weights", 2, 2);
        auto s = strict_array<float>(s_obj, "scales", 1, 2);
        const int64_t rows = w.shape(0), cols = w.shape(1);
        check_shape(f, rows, cols);
        if (s.size() != scale_count(f, rows, cols))
            throw py::value_error(std::string(format_name(f)) + " needs " + std::to_string(scale_count(f, rows, cols)) +
                                  " scales for a " + std::to_string(rows) + "x" + std::to_string(cols) +
                                  " matrix, got " + std::to_string(s.size()));
        py::array_t<uint8_t> out(packed_bytes(f, rows, cols));
        pack(f, w.data(), s.data(), rows, cols, out.mutable_data());
        return out;
    }, py::arg("fmt"), py::arg("weights"), py::arg("scales"),
       "Packs an int8 {-1,0,1} matrix. scales: one per 256-block (TQ1_0/TQ2_0, shape [rows, cols/256]) or one (I2_S).");

    mod.def("unpack", [](const std::string& fmt, const py::buffer& data, int64_t rows, int64_t cols) {
        auto pm = make_matrix(fmt, data, rows, cols);
        const Format f = pm->m->view().fmt;
        py::array_t<int8_t> w({rows, cols});
        py::array_t<float> s(f == Format::I2_S ? std::vector<int64_t>{1}
                                               : std::vector<int64_t>{rows, cols / kTQBlock});
        unpack(f, pm->m->view().data, rows, cols, w.mutable_data(), s.mutable_data());
        return py::make_tuple(w, s);
    }, py::arg("fmt"), py::arg("data"), py::arg("rows"), py::arg("cols"),
       "Returns (int8 weights [rows, cols], float32 scales).");

    mod.def("quantize_activations", [](const py::handle& x_obj) {
        auto x = strict_array<float>(x_obj, "activations", 1, 2);
        const int64_t n = x.ndim() == 2 ? x.shape(0) : 1, k = x.shape(x.ndim() - 1);
        py::array_t<int8_t> q(x.ndim() == 2 ? std::vector<int64_t>{n, k} : std::vector<int64_t>{k});
        py::array_t<float> s(n);
        quantize_rows(x.data(), n, k, q.mutable_data(), s.mutable_data());
        return py::make_tuple(q, s);
    }, py::arg("x"), "Per-token absmax int8 quantization: returns (q, scale) with x ~= q / scale.");

    mod.def("measure_read_bandwidth", [](int64_t bytes, int threads, int reps) {
        py::gil_scoped_release nogil;
        return measure_read_bandwidth(bytes, threads, reps);
    }, py::arg("bytes") = int64_t(512) << 20, py::arg("threads") = 1, py::arg("reps") = 5,
       "Best memory read rate in GB/s over `reps` passes of a `bytes` buffer.");

    mod.def("alloc_weights", [](int64_t nbytes) {
        if (nbytes < 0) throw py::value_error("nbytes must be >= 0");
        void* p = alloc_weights(nbytes);
        if (p == nullptr) throw std::bad_alloc();
        py::capsule owner(p, [](void* q) { free_weights(q); });
        return py::array_t<uint8_t>({nbytes}, {int64_t(1)}, static_cast<uint8_t*>(p), owner);
    }, py::arg("nbytes"), "A zeroed-on-demand uint8 array in huge-page-advised memory, for packed weights.");

    py::class_<PyTernaryMatrix>(mod, "TernaryMatrix")
        .def(py::init(&make_matrix), py::arg("fmt"), py::arg("data"), py::arg("rows"), py::arg("cols"),
             "A packed ternary matrix used in place from `data` (any byte buffer: numpy, bytes, mmap).")
        .def_property_readonly("rows", [](const PyTernaryMatrix& p) { return p.m->view().rows; })
        .def_property_readonly("cols", [](const PyTernaryMatrix& p) { return p.m->view().cols; })
        .def_property_readonly("fmt", [](const PyTernaryMatrix& p) { return format_name(p.m->view().fmt); })
        .def_property_readonly("nbytes", [](const PyTernaryMatrix& p) {
            return packed_bytes(p.m->view().fmt, p.m->view().rows, p.m->view().cols);
        })
        .def("gemv", [](const PyTernaryMatrix& p, const py::handle& x_obj, const std::string& isa_name_) {
            auto x = strict_array<int8_t>(x_obj, "activations", 1, 1);
            const MatView& v = p.m->view();
            if (x.shape(0) != v.cols)
                throw py::value_error("activations have " + std::to_string(x.shape(0)) + " values, matrix has " +
                                      std::to_string(v.cols) + " columns");
            const Isa isa = parse_isa(isa_name_);
            py::array_t<float> y(v.rows);
            {
                py::gil_scoped_release nogil;
                p.m->gemv(x.data(), y.mutable_data(), isa);
            }
            return y;
        }, py::arg("x"), py::arg("isa") = "auto", "y = W x for int8 x (weight scales applied).")
        .def("gemm", [](const PyTernaryMatrix& p, const py::handle& x_obj, const std::string& isa_name_) {
            auto x = strict_array<int8_t>(x_obj, "activations", 2, 2);
            const MatView& v = p.m->view();
            if (x.shape(1) != v.cols)
                throw py::value_error("activations have " + std::to_string(x.shape(1)) + " columns, matrix has " +
                                      std::to_string(v.cols));
            const Isa isa = parse_isa(isa_name_);
            py::array_t<float> y({static_cast<int64_t>(x.shape(0)), v.rows});
            {
                py::gil_scoped_release nogil;
                p.m->gemm(x.data(), x.shape(0), y.mutable_data(), isa);
            }
            return y;
        }, py::arg("x"), py::arg("isa") = "auto", "Y = X W^T for int8 X [n, cols] (weight scales applied).");
}
