// gyre train / predict / evaluate: offline training on the batch view, scoring and evaluation.
//
//   gyre train logreg|linreg --input TRAIN [--test TEST] [--l2 C] [--tolerance T] [--no-bias]
//                            [--max-iterations N] --output MODEL.h5
//   gyre train kmeans --k K --input DATA [--seed S] [--iterations N] --output MODEL.h5
//   gyre train logreg --online --input STREAM [--warm-start MODEL.h5] [--algorithm ftrl|adaptive]
//                     --model-dir DIR [--publish-every N] [--publish-ms T] [--metrics FILE]
//   gyre predict  --model MODEL.h5|DIR --input DATA --output OUT  (lines "score version"; DIR: newest)
//   gyre evaluate --model MODEL.h5 --input DATA [--metrics FILE]
//   all: [--hash-bits B] (train) [--label-column J] (CSV) [--threads N] [--metrics FILE] [--no-progress]
//
// DATA: LIBSVM text, or CSV (a name ending in .csv; the label in column --label-column, 0-based).
// Alone or under mpirun with the same results: every rank reads its chunks of the file, rank 0
// writes the outputs (a temporary renamed into place, only when the command succeeded).
#include "ml.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>

#include "gyre/algorithms/ml.h"
#include "gyre/algorithms/online.h"
#include "gyre/core.h"
#include "gyre/io/model_store.h"
#include "gyre/core/error.h"
#include "gyre/core/text_io.h"
#include "gyre/io/model_file.h"
#include "gyre/mpi/session.h"

namespace {

using nlohmann::json;

gyre::ml::Ranks ranks_of(gyre::mpi::Session& mpi) {
  return gyre::ml::Ranks{mpi.rank(), mpi.size(), [&mpi](const std::string& s) { return mpi.allgather_bytes(s); },
                         mpi.cluster()};
}

// An output file we may write (a regular file or a new name in an existing directory), and not
// one of the inputs.
void check_output(const std::string& given, const char* flag, const std::vector<std::string>& inputs) {
  std::string path;
  try {
    path = gyre::detail::output_target(given);
  } catch (const std::exception& e) {
    throw gyre::Error(std::string(flag) + ": " + e.what());
  }
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) {
    if (::access(path.c_str(), W_OK) != 0)
      throw gyre::Error(std::string("cannot write ") + flag + " " + path + ": " + std::strerror(errno));
    for (const auto& in : inputs) {
      struct stat si {};
      if (::stat(in.c_str(), &si) == 0 && si.st_ino == st.st_ino && si.st_dev == st.st_dev)
        throw gyre::Error(std::string(flag) + " " + given + " is an input file");
    }
  }
  std::filesystem::path dir = std::filesystem::path(path).parent_path();
  if (dir.empty()) dir = ".";
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    throw gyre::Error(std::string(flag) + " " + given + ": directory " + dir.string() + " does not exist");
}

gyre::ml::LoadOptions load_options(const MlCommands& c, const std::string& path, int hash_bits) {
  gyre::ml::LoadOptions o;
  o.read.format = gyre::io::format_of(path);
  o.read.hash_bits = hash_bits;
  o.read.label_column = c.label_column;
  o.threads = c.threads;
  return o;
}

// Writes `j` to `path` (temporary + rename).
void write_json(const std::string& path, const json& j) {
  gyre::detail::AtomicFile f(path);
  f.write(j.dump(2) + "\n");
  f.commit();
}

json iteration_json(const gyre::ml::IterationInfo& i, bool kmeans) {
  json j;
  j["superstep"] = i.iteration;
  if (kmeans) {
    j["inertia"] = i.objective;
    j["changed"] = i.gradient_norm;
  } else {
    j["objective"] = i.objective;
    j["gradient_norm"] = i.gradient_norm;
    j["cg_steps"] = i.inner_steps;
  }
  if (!std::isnan(i.test_auc)) j["test_auc"] = i.test_auc;
  if (!std::isnan(i.test_metric)) j["test_rmse"] = i.test_metric;
  j["seconds"] = i.seconds;
  return j;
}

json map_json(const std::map<std::string, double>& m) {
  json j = json::object();
  for (const auto& [k, v] : m) j[k] = v;
  return j;
}

// Every rank agrees whether the command failed (rank 0 writes the outputs), so all exit alike.
int finish(gyre::mpi::Session& mpi, bool failed) { return mpi.allreduce_sum(failed ? 1 : 0) != 0 ? 1 : 0; }

// The shape of every command here: body() runs on every rank (collective) and returns whether
// committing its outputs failed (commit_on_root); every rank then exits alike (finish). An
// error in the body: on_error(), printed on rank 0, exit 1.
int run_command(gyre::mpi::Session& mpi, const std::function<bool()>& body, const std::function<void()>& on_error = {}) {
  try {
    return finish(mpi, body());
  } catch (const std::exception& e) {
    if (on_error) on_error();
    if (mpi.rank() == 0) std::fprintf(stderr, "gyre: error: %s\n", e.what());
    return 1;
  }
}

// On rank 0: commit() writes the outputs; its error is printed ("gyre: error:"). True if it failed.
bool commit_on_root(gyre::mpi::Session& mpi, const std::function<void()>& commit) {
  if (mpi.rank() != 0) return false;
  try {
    commit();
    return false;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "gyre: error: %s\n", e.what());
    return true;
  }
}

// The model a prediction uses: a model file, or the newest version of a model store directory.
gyre::io::ModelFile load_model(const std::string& path) { return gyre::io::read_model_or_latest(path); }

// gyre train logreg --online: the streaming job (online.h) publishing versions to --model-dir.
// Without --warm-start it continues from the newest version in --model-dir if there is one (a
// restart), else starts from zero.
int run_online(MlCommands& c, gyre::mpi::Session& mpi) {
  const bool root = mpi.rank() == 0;
  return run_command(mpi, [&] {
    if (c.model_dir.empty()) throw gyre::Error("train logreg --online needs --model-dir DIR");
    if (!c.metrics.empty()) check_output(c.metrics, "--metrics", {c.input});
    gyre::algo::OnlineStreamOptions o;
    o.learner.algorithm = gyre::algo::online_algorithm_from_string(c.algorithm);
    o.learner.hash_bits = c.hash_bits;
    o.learner.bias = c.no_bias ? 0.0 : 1.0;
    o.input = c.input;
    o.model_dir = c.model_dir;
    o.warm_start = c.warm_start;
    o.publish_every = c.publish_every;
    o.publish_ms = c.publish_ms;
    if (o.warm_start.empty()) {
      if (auto v = gyre::io::latest(c.model_dir)) {
        o.warm_start = v->path;
        if (root) std::fprintf(stderr, "train logreg --online: continuing from %s (version %llu)\n", v->path.c_str(),
                               static_cast<unsigned long long>(v->version));
      }
    }
    gyre::JobConfig config;
    if (c.threads > 0) config.parallelism = c.threads * mpi.size();
    gyre::Environment env = mpi.size() > 1 ? gyre::Environment(config, mpi.cluster()) : gyre::Environment(config);
    auto job = gyre::algo::add_online_training(env, o);
    env.run();
    const auto& r = job.finish();
    return commit_on_root(mpi, [&] {
        for (const auto& v : r.versions)
          std::printf("version %llu parent %llu examples %llu-%llu progressive_auc %.4f log_loss %.4f\n",
                      static_cast<unsigned long long>(v.version), static_cast<unsigned long long>(v.parent_version),
                      static_cast<unsigned long long>(v.examples_from), static_cast<unsigned long long>(v.examples_to),
                      v.auc, v.log_loss);
        std::fflush(stdout);
        if (!c.metrics.empty()) {
          json j;
          j["command"] = "train logreg --online";
          j["algorithm"] = c.algorithm;
          j["input"] = c.input;
          j["model_dir"] = c.model_dir;
          j["ranks"] = mpi.size();
          j["examples"] = r.examples;
          j["progressive_auc"] = r.progressive_auc;
          j["progressive_log_loss"] = r.progressive_log_loss;
          j["versions"] = json::array();
          for (const auto& v : r.versions)
            j["versions"].push_back({{"version", v.version}, {"parent_version", v.parent_version},
                                     {"examples_from", v.examples_from}, {"examples_to", v.examples_to},
                                     {"examples", v.examples_to - v.examples_from}, {"progressive_auc", v.auc},
                                     {"progressive_log_loss", v.log_loss}, {"path", v.path}});
          write_json(c.metrics, j);
        }
        std::fprintf(stderr, "train logreg --online (%s): %llu examples, progressive AUC %.4f, log loss %.4f, %zu version(s) in %s\n",
                     c.algorithm.c_str(), static_cast<unsigned long long>(r.examples), r.progressive_auc,
                     r.progressive_log_loss, r.versions.size(), c.model_dir.c_str());
    });
  });
}

class Progress {
 public:
  Progress(bool on) : on_(on) {}
  void show(const std::string& line) {
    if (!on_) return;
    std::fprintf(stderr, "\r%s   ", line.c_str());
    std::fflush(stderr);
    shown_ = true;
  }
  void done() {
    if (shown_) std::fprintf(stderr, "\n");
    shown_ = false;
  }

 private:
  bool on_;
  bool shown_ = false;
};

int run_train(MlCommands& c, gyre::mpi::Session& mpi, const std::string& kind) {
  if (c.online) return run_online(c, mpi);
  const bool root = mpi.rank() == 0;
  const auto ranks = ranks_of(mpi);
  Progress progress(root && !c.no_progress && ::isatty(STDERR_FILENO) != 0);
  return run_command(mpi, [&] {
    if (c.output.empty() && c.model_dir.empty())
      throw gyre::Error("train " + kind + " needs --output MODEL.h5 (or --model-dir DIR: publish into a model store)");
    if (!c.output.empty() && !c.model_dir.empty()) throw gyre::Error("train " + kind + ": --output or --model-dir, not both");
    std::vector<std::string> inputs{c.input};
    if (!c.test.empty()) inputs.push_back(c.test);
    if (!c.output.empty()) check_output(c.output, "--output", inputs);
    if (!c.metrics.empty()) check_output(c.metrics, "--metrics", inputs);
    const gyre::ml::Dataset train = gyre::ml::load(c.input, load_options(c, c.input, c.hash_bits), ranks);
    gyre::ml::Dataset test;
    if (!c.test.empty()) test = gyre::ml::load(c.test, load_options(c, c.test, c.hash_bits), ranks);
    gyre::ml::TrainResult res;
    const bool kmeans = kind == "kmeans";
    if (kmeans) {
      gyre::ml::KMeansOptions o;
      o.k = c.k;
      o.seed = c.seed;
      o.max_iterations = c.iterations;
      o.threads = c.threads;
      o.on_iteration = [&](const gyre::ml::IterationInfo& i) {
        char buf[160];
        std::snprintf(buf, sizeof buf, "train kmeans: step %d/%d, inertia %.6g, %.0f changed", i.iteration,
                      c.iterations, i.objective, i.gradient_norm);
        progress.show(buf);
      };
      res = gyre::ml::train_kmeans(train, o, ranks);
    } else {
      // (The online trainer, another branch, adds its case for train logreg here.)
      gyre::ml::TrainOptions o;
      o.l2 = c.l2;
      o.tolerance = c.tolerance;
      o.bias = !c.no_bias;
      o.max_iterations = c.max_iterations;
      o.threads = c.threads;
      if (!c.test.empty()) o.test = &test;
      o.on_iteration = [&](const gyre::ml::IterationInfo& i) {
        char buf[200];
        int n = std::snprintf(buf, sizeof buf, "train %s: iteration %d, objective %.10g, |grad| %.4g", kind.c_str(),
                              i.iteration, i.objective, i.gradient_norm);
        if (!std::isnan(i.test_auc)) std::snprintf(buf + n, sizeof buf - static_cast<std::size_t>(n), ", test AUC %.4f", i.test_auc);
        progress.show(buf);
      };
      res = kind == "logreg" ? gyre::ml::train_logreg(train, o, ranks) : gyre::ml::train_linreg(train, o, ranks);
    }
    progress.done();
    return commit_on_root(mpi, [&] {
        if (!c.metrics.empty()) {
          json j;
          j["command"] = "train " + kind;
          j["input"] = c.input;
          j["rows"] = train.rows;
          j["dimension"] = train.dimension;
          j["ranks"] = mpi.size();
          j["ended_by"] = res.ended_by;
          j["vector_reductions"] = res.vector_reductions;
          j["seconds"] = res.seconds;
          j["supersteps"] = json::array();
          for (const auto& i : res.iterations) j["supersteps"].push_back(iteration_json(i, kmeans));
          j["model"] = map_json(res.model.metrics);
          write_json(c.metrics, j);
        }
        std::string wrote = c.output;
        // The metrics are in place first (a model in place means the whole command succeeded);
        // if the model cannot be written, they go again.
        struct DropMetrics {
          const std::string& path;
          bool armed = true;
          ~DropMetrics() {
            if (armed && !path.empty()) std::remove(path.c_str());
          }
        } drop{c.metrics};
        if (!c.model_dir.empty()) {
          // A batch version supersedes what is in the store: above every version, its parent the
          // newest (the online version it replaces).
          res.model.parent_version = gyre::io::latest_version(c.model_dir);
          const std::uint64_t v = gyre::io::publish(c.model_dir, res.model);
          wrote = gyre::io::version_path(c.model_dir, v) + " (version " + std::to_string(v) + ", parent " +
                  std::to_string(res.model.parent_version) + ")";
        } else {
          gyre::io::write_model(c.output, res.model);
        }
        drop.armed = false;
        const auto& last = res.iterations.back();
        std::fprintf(stderr, "train %s: %llu rows, %llu features, %zu %s (%s), %s %.10g, %.3f s on %d rank(s); wrote %s\n",
                     kind.c_str(), static_cast<unsigned long long>(train.rows),
                     static_cast<unsigned long long>(train.dimension), res.iterations.size() - (kmeans ? 0 : 1),
                     kmeans ? "Lloyd steps" : "iterations", res.ended_by.c_str(), kmeans ? "inertia" : "objective",
                     last.objective, res.seconds, mpi.size(), wrote.c_str());
    });
  }, [&] { progress.done(); });
}

int run_predict(MlCommands& c, gyre::mpi::Session& mpi) {
  const auto ranks = ranks_of(mpi);
  return run_command(mpi, [&] {
    check_output(c.output, "--output", {c.input, c.model});
    const gyre::io::ModelFile model = load_model(c.model);
    const gyre::ml::Dataset data = gyre::ml::load(c.input, load_options(c, c.input, model.hash_bits), ranks);
    const std::vector<double> all = gyre::ml::gather_scores(gyre::ml::score(model, data, c.threads), ranks);
    return commit_on_root(mpi, [&] {
        gyre::detail::AtomicFile out(c.output);
        std::string buf;
        buf.reserve(1 << 16);
        const std::string version = " " + std::to_string(model.version) + "\n";
        char num[64];
        for (double s : all) {
          const auto r = model.kind == "kmeans" ? std::to_chars(num, num + sizeof num, static_cast<long long>(s))
                                                : std::to_chars(num, num + sizeof num, s);
          buf.append(num, r.ptr);
          buf += version;
          if (buf.size() > (1u << 16) - 128) {
            out.write(buf);
            buf.clear();
          }
        }
        out.write(buf);
        out.commit();
        std::fprintf(stderr, "predict: %zu rows with %s model version %llu; wrote %s\n", all.size(), model.kind.c_str(),
                     static_cast<unsigned long long>(model.version), c.output.c_str());
    });
  });
}

int run_evaluate(MlCommands& c, gyre::mpi::Session& mpi) {
  const auto ranks = ranks_of(mpi);
  return run_command(mpi, [&] {
    if (!c.metrics.empty()) check_output(c.metrics, "--metrics", {c.input, c.model});
    const gyre::io::ModelFile model = load_model(c.model);
    const gyre::ml::Dataset data = gyre::ml::load(c.input, load_options(c, c.input, model.hash_bits), ranks);
    const auto metrics = gyre::ml::evaluate(model, data, ranks, c.threads);
    return commit_on_root(mpi, [&] {
        for (const auto& [k, v] : metrics) std::printf("%s %.10g\n", k.c_str(), v);
        std::fflush(stdout);
        if (!c.metrics.empty()) {
          json j;
          j["command"] = "evaluate";
          j["model"] = c.model;
          j["kind"] = model.kind;
          j["version"] = model.version;
          j["input"] = c.input;
          j["metrics"] = map_json(metrics);
          write_json(c.metrics, j);
        }
    });
  });
}

void common_options(CLI::App* cmd, MlCommands& c) {
  cmd->add_option("--threads", c.threads, "worker threads (partitions) per rank (default: the cores the rank sees)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--label-column", c.label_column, "CSV input: the label's column, 0-based (default 0)")
      ->check(CLI::NonNegativeNumber);
}

}  // namespace

bool MlCommands::parsed() const { return train->parsed() || predict->parsed() || evaluate->parsed(); }

int MlCommands::run(gyre::mpi::Session& mpi) {
  if (train_logreg->parsed()) return run_train(*this, mpi, "logreg");
  if (train_linreg->parsed()) return run_train(*this, mpi, "linreg");
  if (train_kmeans->parsed()) return run_train(*this, mpi, "kmeans");
  if (predict->parsed()) return run_predict(*this, mpi);
  return run_evaluate(*this, mpi);
}

void add_ml_commands(CLI::App& app, MlCommands& c) {
  c.train = app.add_subcommand("train", "train a model (logreg, linreg, kmeans) offline on a data set");
  c.train->require_subcommand(1);
  auto linear = [&](const char* name, const char* what) {
    CLI::App* t = c.train->add_subcommand(name, what);
    t->add_option("--input", c.input, "training data (LIBSVM, or CSV named *.csv)")->required();
    t->add_option("--test", c.test, "test data: AUC / RMSE after every iteration (in --metrics)")->group("offline");
    t->add_option("--l2", c.l2, "C: the loss weight against 0.5 w'w, as liblinear (default 1)")
        ->check(CLI::PositiveNumber)
        ->group("offline");
    t->add_option("--tolerance", c.tolerance, "stop when |grad| <= T x (liblinear's scale) |grad(0)| (default 0.01)")
        ->check(CLI::PositiveNumber)
        ->group("offline");
    t->add_flag("--no-bias", c.no_bias, "no bias feature (default: one, as liblinear -B 1)");
    t->add_option("--max-iterations", c.max_iterations, "Newton iterations at most (default 1000)")
        ->check(CLI::PositiveNumber)
        ->group("offline");
    t->add_option("--hash-bits", c.hash_bits, "hash feature indices into 2^B (default: no hashing)")->check(CLI::Range(0, 31));
    t->add_option("--output", c.output, "model file to write (HDF5; offline training)")->group("offline");
    t->add_option("--metrics", c.metrics, "per-superstep (online: per-version) figures as JSON");
    t->add_flag("--no-progress", c.no_progress, "no progress line on a terminal");
    common_options(t, c);
    return t;
  };
  c.train_logreg = linear("logreg", "L2-regularised logistic regression (trust-region Newton, as liblinear -s 0)");
  CLI::App* lr = c.train_logreg;
  auto* online = lr->add_flag("--online", c.online,
                              "online training on a stream (FTRL or adaptive SGD), publishing versions to --model-dir");
  // Offline options mean nothing to the online trainer: refused, not ignored.
  for (const char* name : {"--output", "--test", "--l2", "--tolerance", "--max-iterations"})
    online->excludes(lr->get_option(name));
  lr->add_option("--warm-start", c.warm_start, "--online: continue from this model file (default: the newest in --model-dir)")
      ->needs(online);
  lr->add_option("--algorithm", c.algorithm, "--online: ftrl (default) or adaptive")
      ->check(CLI::IsMember({"ftrl", "adaptive"}))
      ->needs(online);
  lr->add_option("--model-dir", c.model_dir, "the model store (a directory of versions): --online publishes there; offline, the model is published there as a new (batch) version instead of --output");
  lr->add_option("--publish-every", c.publish_every, "--online: publish a version every N examples (default: at the end)")
      ->needs(online);
  lr->add_option("--publish-ms", c.publish_ms, "--online: and every T milliseconds")->needs(online);
  c.train_linreg = linear("linreg", "L2-regularised least squares (trust-region Newton)");
  c.train_kmeans = c.train->add_subcommand("kmeans", "k-means (k-means++ initialisation, Lloyd steps)");
  CLI::App* km = c.train_kmeans;
  km->add_option("--k", c.k, "clusters")->required()->check(CLI::PositiveNumber);
  km->add_option("--input", c.input, "data (LIBSVM or CSV; labels are ignored)")->required();
  km->add_option("--seed", c.seed, "random seed of the initialisation (default 1)");
  km->add_option("--iterations", c.iterations, "Lloyd steps at most (default 100)")->check(CLI::PositiveNumber);
  km->add_option("--hash-bits", c.hash_bits, "hash feature indices into 2^B (default: no hashing)")->check(CLI::Range(0, 31));
  km->add_option("--output", c.output, "model file to write (HDF5)")->required();
  km->add_option("--metrics", c.metrics, "per-superstep figures as JSON");
  km->add_flag("--no-progress", c.no_progress, "no progress line on a terminal");
  common_options(km, c);

  c.predict = app.add_subcommand("predict", "score every row of a data set with a model: lines \"score version\"");
  c.predict->add_option("--model", c.model, "model file (HDF5, from gyre train), or a model store directory (its newest version)")->required();
  c.predict->add_option("--input", c.input, "data to score (LIBSVM or CSV)")->required();
  c.predict->add_option("--output", c.output, "one line per input row, in input order")->required();
  common_options(c.predict, c);

  c.evaluate = app.add_subcommand("evaluate", "a model's metrics on a data set (AUC, log loss, accuracy / RMSE / inertia)");
  c.evaluate->add_option("--model", c.model, "model file (HDF5, from gyre train), or a model store directory (its newest version)")->required();
  c.evaluate->add_option("--input", c.input, "labelled data (LIBSVM or CSV)")->required();
  c.evaluate->add_option("--metrics", c.metrics, "the metrics as JSON");
  common_options(c.evaluate, c);
}
