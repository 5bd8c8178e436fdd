import { templateConfiguration } from '../bin/stage-config';
import { STAGES, readTemplate, stageSettings } from '../lib/project';

const templateParameters = Object.keys(readTemplate('template.yaml').Parameters);
const image = '123456789012.dkr.ecr.eu-west-1.amazonaws.com/sluice-trainer:0123abcd';

test.each(STAGES)('%s: samconfig.toml\'s parameters, all of them template parameters, and the built trainer image', (stage) => {
  const { Parameters } = templateConfiguration(stage, image);
  expect(Parameters).toEqual({ ...stageSettings(stage).parameters, TrainerImageUri: image });
  expect(templateParameters).toEqual(expect.arrayContaining(Object.keys(Parameters)));
});

test.each(STAGES)('%s has a lowercase stack name (the raw bucket is named after it)', (stage) => {
  expect(stageSettings(stage).stackName).toMatch(/^[a-z][a-z0-9-]*$/);
});
