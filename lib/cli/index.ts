// The dd2 command line: builds the commander program. Each subcommand lives in commands/<name>.ts
// and calls a library function; this file only wires them. Exit codes: 0 ok, 1 failure, 2 usage.
import { Command, CommanderError } from 'commander';
import { packageVersion, versionReport } from './version.js';
import { makeTrainTokenizerCommand } from './commands/train-tokenizer.js';
import { makeTrainArCommand } from './commands/train-ar.js';
import { makeTrainFeatnetCommand } from './commands/train-featnet.js';
import { makeEncodeCommand } from './commands/encode.js';
import { makeSampleCommand } from './commands/sample.js';
import { makeDistillCommand } from './commands/distill.js';
import { makeEvalCommand } from './commands/eval.js';
import { makePipelineCommand } from './commands/pipeline.js';

export function makeProgram(): Command {
  const program = new Command('dd2')
    .description('Train image autoregressive models and distill them into one-step generators ' +
      '(Distilled Decoding 2), on the CPU or an NVIDIA GPU.')
    .option('-V, --version', 'print the version and the facts of this build (CUDA, GPUs, BLAS) and exit')
    .showHelpAfterError('(run dd2 --help for the list of commands)')
    .exitOverride();
  program.on('option:version', () => {
    process.stdout.write(versionReport() + '\n');
    process.exit(0);
  });
  const train = new Command('train')
    .description('train a VQ tokenizer, an AR teacher or a domain feature network (dd2 train tokenizer|ar|featnet)')
    .addCommand(makeTrainTokenizerCommand())
    .addCommand(makeTrainArCommand())
    .addCommand(makeTrainFeatnetCommand())
    .exitOverride();
  program.addCommand(train);
  program.addCommand(makeEncodeCommand());
  program.addCommand(makeDistillCommand());
  program.addCommand(makeSampleCommand());
  program.addCommand(makeEvalCommand());
  program.addCommand(makePipelineCommand());
  return program;
}

export async function main(argv: string[]): Promise<number> {
  const program = makeProgram();
  if (argv.length <= 2) {
    program.outputHelp();
    return 2;
  }
  try {
    await program.parseAsync(argv);
    return 0;
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version') return 0;
      if (e.code === 'commander.help') return e.exitCode === 0 ? 0 : 2;   // help shown for a missing subcommand
      return e.exitCode === 0 ? 0 : 2;
    }
    const msg = e instanceof Error ? e.message : String(e);
    process.stderr.write(`dd2: ${msg.replace(/^dd2: /, '')}\n`);
    if (process.env.DD2_DEBUG) process.stderr.write(`${(e as Error).stack}\n`);
    return (e as { exitCode?: number }).exitCode ?? 1;
  }
}

export { packageVersion };
