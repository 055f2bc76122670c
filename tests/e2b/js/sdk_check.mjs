// Drives the unmodified E2B JavaScript SDK against selfbox (E2B_API_URL, E2B_SANDBOX_URL,
// E2B_API_KEY from the environment) and prints one JSON object: what each call gave back.
import { Sandbox } from '@e2b/code-interpreter'

const out = {}
const sbx = await Sandbox.create({ timeoutMs: 120_000, metadata: { suite: 'js' } })
try {
  await sbx.runCode('x = 41')
  out.state = (await sbx.runCode('x + 1')).text
  const lines = []
  await sbx.runCode('print("a")\nprint("b")', { onStdout: (m) => lines.push(m.line) })
  out.stdout = lines
  out.error = (await sbx.runCode('1 / 0')).error?.name
  out.chart = (await sbx.runCode('import matplotlib.pyplot as plt\nplt.plot([1, 2])\nplt.show()'))
    .results[0].chart?.type
  await sbx.files.write('/home/user/a.txt', 'hello from js')
  out.read = await sbx.files.read('/home/user/a.txt')
  out.listed = (await sbx.files.list('/home/user')).map((e) => e.name)
  const done = await sbx.commands.run('echo hi; echo err >&2')
  out.command = [done.exitCode, done.stdout, done.stderr]
  try {
    await sbx.commands.run('exit 3')
  } catch (e) {
    out.exit = [e.name, e.exitCode]
  }
  out.info = (await sbx.getInfo()).metadata
  out.listedSandboxes = (await Sandbox.list().nextItems()).map((s) => s.sandboxId)
    .includes(sbx.sandboxId)
} finally {
  out.killed = await sbx.kill()
}
try {
  await Sandbox.connect(sbx.sandboxId)
} catch (e) {
  out.afterKill = e.name
}
console.log(JSON.stringify(out))
