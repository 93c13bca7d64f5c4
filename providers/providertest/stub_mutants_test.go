package providertest_test

func logsMutants() []mutant      { return nil }
func registryMutants() []mutant  { return nil }
func balancerMutants() []mutant  { return nil }
func schedulerMutants() []mutant { return nil }
