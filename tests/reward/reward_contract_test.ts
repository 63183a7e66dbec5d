// The shared reward contract, run on every in-process head layout.
import { OnnxReward } from "../../reward/mod.ts";
import { testdataPath } from "../_helpers.ts";
import { rewardContract } from "./_reward_contract.ts";

for (const dir of ["reward-qwen-prm", "reward-math-shepherd", "reward-paper-2", "reward-paper-1"]) {
  rewardContract(`OnnxReward(${dir})`, async () => {
    const reward = await OnnxReward.load(testdataPath(`models/${dir}`), { threads: 1 });
    return { reward, close: () => reward.close() };
  });
}
