#!/usr/bin/env bash
# Every experiment preset, shortened (1-2 rounds, few iterations), through the real entry point: a smoke
# check that each still runs to the end. ~20 min on 2 cores. Usage: benchmarks/presets_smoke.sh [OUT_DIR]
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
OUT=${1:-outputs/presets_smoke}
mkdir -p $OUT
C="evaluation.oracle.epochs=1 evaluation.oracle.samples_per_round=32 evaluation.oracle.cache_dir=$OUT/oracle"
GI="attack.gradient_inversion.iterations=2 attack.gradient_inversion.inner_iterations=2"
GAN="attack.gan.start_round=1 attack.gan.start_accuracy=null attack.gan.generator_steps=2 attack.gan.num_fakes=16"
MIA="attack.membership.num_shadow=2 attack.membership.num_reference=2 attack.membership.training.epochs=1"
failed=0
run() {
  name=$1; shift; s=$(date +%s)
  $PY -m fl_privacy.run "$@" hydra.run.dir=$OUT/$name overwrite=true > $OUT/$name.log 2>&1; rc=$?
  echo "$name rc=$rc $(( $(date +%s) - s ))s $(grep -c 'Traceback' $OUT/$name.log) tracebacks"
  [ $rc -eq 0 ] || failed=$((failed + 1))
}
run dlg +experiment=dlg $GI simulation.num_clients=2
run dlg_photos +experiment=dlg_photos $GI simulation.num_clients=2
run dlg_rounds +experiment=dlg_rounds $GI strategy.num_rounds=2 "strategy.capture.rounds=[2]" "strategy.capture.partitions=[0]" strategy.warmup.epochs=1
run dp_vs_dlg +experiment=dp_vs_dlg $GI simulation.num_clients=2
run dp_vs_gan +experiment=dp_vs_gan $C $GAN strategy.num_rounds=2 strategy.warmup.epochs=1
run fedavg_noniid +experiment=fedavg_noniid strategy.num_rounds=1 strategy.warmup.epochs=1
run gan_attack +experiment=gan_attack $C $GAN strategy.num_rounds=2 strategy.warmup.epochs=1
run gan_attack_control +experiment=gan_attack_control $C $GAN strategy.num_rounds=2 strategy.warmup.epochs=1
run gan_attack_faces +experiment=gan_attack_faces $C $GAN strategy.num_rounds=2 strategy.warmup.epochs=1
run idlg +experiment=idlg $GI simulation.num_clients=2
run imprint +experiment=imprint
run inverting_fedavg +experiment=inverting_fedavg $GI "strategy.capture.partitions=[0]"
run label_restoration +experiment=label_restoration strategy.num_rounds=1 "strategy.capture.rounds=[1]"
for p in realism realism_b1 realism_iid realism_anchor; do
  run $p +experiment=$p $GI attack.gradient_inversion.best_dlg_iterations=1 strategy.num_rounds=1 "strategy.capture.rounds=[1]" strategy.warmup.epochs=1 attack.gradient_inversion.max_images_per_round=4
done
run mia +experiment=mia $MIA strategy.num_rounds=1 "strategy.capture.rounds=[1]" strategy.warmup.epochs=1
run mia_dp +experiment=mia_dp $MIA strategy.num_rounds=1 "strategy.capture.rounds=[1]" strategy.warmup.epochs=1
run par_gan +experiment=par_gan $C defense.par_gan.members=60 defense.par_gan.steps=3 defense.par_gan.samples=64
run par_gan_memorise +experiment=par_gan_memorise $C defense.par_gan.passes=2 defense.par_gan.samples=64 defense.par_gan.monte_carlo_samples=256
run pruning_vs_dlg +experiment=pruning_vs_dlg $GI simulation.num_clients=2
run representation_inversion +experiment=representation_inversion $C strategy.num_rounds=1 strategy.warmup.epochs=1 attack.representation_inversion.iterations=5 attack.representation_inversion.images=2
run secagg_vs_inversion +experiment=secagg_vs_inversion $GI simulation.num_clients=2
run gan_central_dp +experiment=gan_attack defense.central_dp.enabled=true $C $GAN strategy.num_rounds=2 strategy.warmup.epochs=1
echo "$failed preset(s) failed"
exit $failed
