// Writes each stage's CloudFormation template configuration (the file a CodePipeline
// CloudFormation action reads its parameters from) into <directory>:
//   npx ts-node bin/stage-config.ts <directory> <trainer image URI>
// Run by buildspec.yml after `sam package`.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { STAGES, Stage, stageConfigurationFile, stageSettings } from '../lib/project';

/** samconfig.toml's parameters for the stage, and the trainer image this build pushed. */
export function templateConfiguration(stage: Stage, trainerImageUri: string) {
  return { Parameters: { ...stageSettings(stage).parameters, TrainerImageUri: trainerImageUri } };
}

if (require.main === module) {
  const [directory, trainerImageUri] = process.argv.slice(2);
  if (!directory || !trainerImageUri) {
    throw new Error('usage: stage-config.ts <directory> <trainer image URI>');
  }
  mkdirSync(directory, { recursive: true });
  for (const stage of STAGES) {
    const file = join(directory, stageConfigurationFile(stage));
    writeFileSync(file, JSON.stringify(templateConfiguration(stage, trainerImageUri), null, 2) + '\n');
  }
}
