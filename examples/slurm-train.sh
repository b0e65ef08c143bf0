#!/usr/bin/env bash
# Train one SpriteForge model on several Slurm nodes, all GPUs of each: sbatch examples/slurm-train.sh
# torchrun starts one process per GPU on every node; they meet at the first node's address (c10d rendezvous).
# --batch is the global batch: it must divide by nodes × GPUs per node. Resume with the same script and
# `--resume RUN_FOLDER` in place of the model arguments (any number of nodes may resume a run).
#SBATCH --job-name=spriteforge
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=4
#SBATCH --cpus-per-task=16
#SBATCH --time=24:00:00
#SBATCH --output=%x-%j.out
set -euo pipefail

HEAD_NODE=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
GPUS_PER_NODE=${SLURM_GPUS_ON_NODE:-4}
export OMP_NUM_THREADS=$(( ${SLURM_CPUS_PER_TASK:-16} / GPUS_PER_NODE ))

srun torchrun \
  --nnodes "$SLURM_NNODES" --nproc-per-node "$GPUS_PER_NODE" \
  --rdzv-id "$SLURM_JOB_ID" --rdzv-backend c10d --rdzv-endpoint "$HEAD_NODE:29500" \
  -m spriteforge train collagan --dataset all --batch 64 --precision bf16 --steps 80000 \
  --callback-evaluate-l1 --run-string "slurm-$SLURM_JOB_ID"
