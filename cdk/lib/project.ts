// What the pipeline and the checks read from the rest of the repository: the SAM template,
// samconfig.toml's stages and Cargo manifests. Read here once, so the pipeline deploys what
// `sam deploy --config-env <stage>` would, and the tests check the files the pipeline ships.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseToml } from 'smol-toml';
import { CollectionTag, parse as parseYaml, ScalarTag, YAMLMap, YAMLSeq } from 'yaml';

export const ROOT = join(__dirname, '..', '..');

/** The pipeline's stages, in the order a commit reaches them; each is an environment in samconfig.toml. */
export const STAGES = ['dev', 'prod'] as const;
export type Stage = (typeof STAGES)[number];

/** The CloudFormation template configuration the build writes for a stage (see stage-config.ts). */
export const stageConfigurationFile = (stage: Stage) => `${stage}.json`;

// CloudFormation's short-form intrinsics (`!Ref`, `!GetAtt`, `!Sub`, ...) are YAML tags; each becomes
// its long form (`{"Fn::Sub": ...}`), in whichever node kind the template wrote it.
const INTRINSICS = ['And', 'Base64', 'Cidr', 'Condition', 'Equals', 'FindInMap', 'GetAZs', 'GetAtt', 'If',
  'ImportValue', 'Join', 'Not', 'Or', 'Ref', 'Select', 'Split', 'Sub', 'Transform'];
const cloudFormationTags = INTRINSICS.flatMap((name): (ScalarTag | CollectionTag)[] => {
  const key = name === 'Ref' || name === 'Condition' ? name : `Fn::${name}`;
  const tag = `!${name}`;
  const longForm = (value: unknown) => ({ [key]: value });
  const collection = (value: YAMLMap.Parsed | YAMLSeq.Parsed) => longForm(value.toJSON());
  return [
    { tag, resolve: longForm },
    { tag, collection: 'seq', resolve: collection },
    { tag, collection: 'map', resolve: collection },
  ];
});

/** A CloudFormation template in YAML, relative to the repository root, with intrinsics in long form. */
export function readTemplate(path: string): any {
  return parseYaml(readFileSync(join(ROOT, path), 'utf8'), { customTags: cloudFormationTags });
}

/** A TOML file (samconfig.toml, a Cargo manifest), relative to the repository root. */
export function readToml(path: string): any {
  return parseToml(readFileSync(join(ROOT, path), 'utf8'));
}

export interface StageSettings {
  stackName: string;
  /** Template parameters, as `sam deploy --config-env <stage>` passes them. */
  parameters: Record<string, string>;
}

/**
 * A stage's stack name and parameters from samconfig.toml. `parameter_overrides` is a list of
 * `Name=Value` strings, a value with spaces in double quotes, as SAM reads it.
 */
export function stageSettings(stage: Stage): StageSettings {
  const environment = readToml('samconfig.toml')[stage];
  const stackName = environment?.global?.parameters?.stack_name;
  if (typeof stackName !== 'string') {
    throw new Error(`samconfig.toml: [${stage}.global.parameters] needs a stack_name`);
  }
  const overrides: unknown = environment.deploy?.parameters?.parameter_overrides ?? [];
  if (!Array.isArray(overrides)) {
    throw new Error(`samconfig.toml: ${stage}'s parameter_overrides must be a list of "Name=Value" strings`);
  }
  const parameters = Object.fromEntries(overrides.map((override: string) => {
    const [, name, value] = /^([A-Za-z0-9]+)=(.*)$/.exec(override) ?? [];
    if (name === undefined) {
      throw new Error(`samconfig.toml: ${stage}'s parameter override ${JSON.stringify(override)} is not Name=Value`);
    }
    return [name, value.replace(/^"(.*)"$/, '$1')];
  }));
  return { stackName, parameters };
}
