CREATE TABLE `nodes` (
	`tree_id` integer NOT NULL,
	`node_index` integer NOT NULL,
	`parent_index` integer NOT NULL,
	`sibling_index` integer NOT NULL,
	`depth` integer NOT NULL,
	`text` text NOT NULL,
	`logprob` real NOT NULL,
	`prior` real NOT NULL,
	`reward` real,
	`visits` integer NOT NULL,
	`value` real NOT NULL,
	`mc_label` real,
	`terminal` integer NOT NULL,
	`correct` integer,
	`pruned` integer NOT NULL,
	`tokens` integer NOT NULL,
	PRIMARY KEY(`tree_id`, `node_index`),
	FOREIGN KEY (`tree_id`) REFERENCES `trees`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE TABLE `problems` (
	`run_id` text NOT NULL,
	`problem_id` text NOT NULL,
	`problem_index` integer NOT NULL,
	`question` text NOT NULL,
	`gold` text,
	`source` text,
	`shard` integer,
	`status` text DEFAULT 'done' NOT NULL,
	`prediction` text,
	`answer` text,
	`correct` integer,
	`reward` real,
	`tokens` integer DEFAULT 0 NOT NULL,
	`seconds` real DEFAULT 0 NOT NULL,
	`finished_at` integer NOT NULL,
	PRIMARY KEY(`run_id`, `problem_id`),
	FOREIGN KEY (`run_id`) REFERENCES `runs`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE TABLE `runs` (
	`id` text PRIMARY KEY NOT NULL,
	`strategy` text NOT NULL,
	`config` text NOT NULL,
	`seed` integer NOT NULL,
	`policy_id` text NOT NULL,
	`reward_id` text,
	`problems_source` text NOT NULL,
	`status` text DEFAULT 'running' NOT NULL,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL,
	`shards` integer
);
--> statement-breakpoint
CREATE TABLE `trajectories` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`run_id` text NOT NULL,
	`problem_id` text NOT NULL,
	`tree_id` integer,
	`steps` text NOT NULL,
	`step_rewards` text NOT NULL,
	`score` real NOT NULL,
	`mc_score` real,
	`correct` integer,
	`pseudo_label` integer DEFAULT false NOT NULL,
	`chosen` integer DEFAULT false NOT NULL,
	`answer` text,
	FOREIGN KEY (`tree_id`) REFERENCES `trees`(`id`) ON UPDATE no action ON DELETE cascade,
	FOREIGN KEY (`run_id`,`problem_id`) REFERENCES `problems`(`run_id`,`problem_id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `trajectories_run_problem_idx` ON `trajectories` (`run_id`,`problem_id`);--> statement-breakpoint
CREATE TABLE `trees` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`run_id` text NOT NULL,
	`problem_id` text NOT NULL,
	`kind` text NOT NULL,
	`seed` integer NOT NULL,
	`node_count` integer NOT NULL,
	`created_at` integer NOT NULL,
	FOREIGN KEY (`run_id`,`problem_id`) REFERENCES `problems`(`run_id`,`problem_id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `trees_run_problem_idx` ON `trees` (`run_id`,`problem_id`);--> statement-breakpoint
CREATE INDEX `trees_run_kind_idx` ON `trees` (`run_id`,`kind`);