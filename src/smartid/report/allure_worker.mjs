// Many Allure reports from one Node process (docs/fleet.md): a fleet renders every site's report
// here instead of starting `allure generate` (about 1.2 s of Node's start and imports) per site.
//
//   node allure_worker.mjs ALLURE_PACKAGE_FOLDER SOCKET
//
// It loads @allurereport/core, the library the `allure` command is built on, from beside the
// given allure package, listens on the Unix socket SOCKET and prints "ready" on stdout. Each line
// a client sends is a job, {"id", "cwd", "config", "results"}: the report that `allure generate
// --config CONFIG RESULTS` run in CWD makes. Each job gets one answer line, {"id", "ok"} or
// {"id", "ok": false, "error"}. Jobs run one at a time, in the order they arrive; the process
// ends when its stdin closes (its parent is gone).
import childProcess from "node:child_process";
import { copyFile, rm } from "node:fs/promises";
import { createRequire, syncBuiltinESMExports } from "node:module";
import net from "node:net";
import { pathToFileURL } from "node:url";
import readline from "node:readline";

const [allureFolder, socketPath] = process.argv.slice(2);

// Allure's "local" CI detector asks git for the branch and remote of the folder a report is
// rendered in, three to five processes per report. A site's report describes the site, not the
// suite's own checkout: git is answered as if absent, before Allure is loaded (the `allure
// generate` path gets the same answers from GIT_DIR pointing nowhere, smartid.report.html).
const spawnSync = childProcess.spawnSync;
childProcess.spawnSync = (command, ...rest) =>
  command === "git"
    ? { error: new Error("git is not asked"), status: null, stdout: Buffer.alloc(0), stderr: Buffer.alloc(0) }
    : spawnSync(command, ...rest);
syncBuiltinESMExports();
const require = createRequire(`${allureFolder}/package.json`);
const core = await import(pathToFileURL(require.resolve("@allurereport/core")).href);

let jobs = 0;

async function generate(job) {
  process.chdir(job.cwd);
  // A JavaScript config is imported, and Node keeps what it imported (and what failed) by path:
  // each job imports a copy of its own.
  const script = /\.[cm]?js$/.exec(job.config);
  jobs += 1;
  const copy = script ? job.config.replace(/\.[cm]?js$/, `.job-${process.pid}-${jobs}${script[0]}`) : null;
  if (copy) await copyFile(job.config, copy);
  try {
    const config = await core.readConfig(job.cwd, copy ?? job.config, {});
    const report = new core.AllureReport(config);
    await report.restoreState([]);
    await report.start();
    await report.readDirectory(job.results);
    await report.done();
  } finally {
    if (copy) await rm(copy, { force: true });
  }
}

let queue = Promise.resolve();

const server = net.createServer((connection) => {
  const lines = readline.createInterface({ input: connection });
  lines.on("line", (line) => {
    queue = queue.then(async () => {
      let answer;
      try {
        const job = JSON.parse(line);
        try {
          const started = Date.now();
          await generate(job);
          console.log(`rendered ${job.results} in ${Date.now() - started} ms`);
          answer = { id: job.id, ok: true };
        } catch (error) {
          answer = { id: job.id, ok: false, error: String(error?.message ?? error) };
        }
      } catch (error) {
        answer = { id: null, ok: false, error: `not a job: ${String(error?.message ?? error)}` };
      }
      if (!connection.destroyed) connection.write(`${JSON.stringify(answer)}\n`);
    });
  });
  connection.on("error", () => {});
});

server.listen(socketPath, () => console.log("ready"));
process.stdin.on("end", () => process.exit(0));
process.stdin.on("close", () => process.exit(0));
process.stdin.resume();
