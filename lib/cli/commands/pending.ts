// A subcommand whose implementation has not landed yet: it is listed in --help, explains itself,
// and exits with status 1 so scripts cannot mistake it for success.
import { Command } from 'commander';

export class NotImplementedError extends Error {
  exitCode = 1;
}

export function makePendingCommand(name: string, summary: string): Command {
  return new Command(name)
    .description(summary)
    .allowUnknownOption(true)
    .allowExcessArguments(true)
    .helpOption('-h, --help', 'show help for this command')
    .action(() => {
      throw new NotImplementedError(
        `'dd2 ${name}' is not implemented yet in this version (${summary}). ` +
        `See README.md, "What works", for the current state.`);
    });
}
